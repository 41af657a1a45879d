/**
 * Open questions of the spec: choices with the default marked (structured questions), or a free answer (older
 * specs whose questions are plain sentences).
 */
import React, { useState } from 'react';
import { Button } from '@jupyterlab/ui-components';

export interface IQuestionOption {
  value: string;
  label: string;
}

/** A structured question (the TaskSpec's `Question`); older specs hold plain strings. */
export interface IQuestion {
  id: string;
  text: string;
  field: string;
  options: IQuestionOption[];
  default: string;
}

export type AnyQuestion = string | IQuestion;

export function isStructured(q: AnyQuestion): q is IQuestion {
  return typeof q === 'object' && q !== null && Array.isArray(q.options) && q.options.length > 0;
}

export interface IQuestionsProps {
  questions: AnyQuestion[];
  busy: boolean;
  /** A structured question answered with one of its option values. */
  onAnswer: (questionId: string, value: string) => void;
  /** Plain questions answered in words: the request is interpreted again with the answers. */
  onFreeAnswers: (answers: string) => void;
}

export function Questions(props: IQuestionsProps): JSX.Element | null {
  const [free, setFree] = useState<Record<number, string>>({});
  if (!props.questions.length) {
    return null;
  }
  const plain = props.questions
    .map((q, i) => [q, i] as const)
    .filter(([q]) => !isStructured(q)) as [string | IQuestion, number][];
  return (
    <section className="ca-section ca-questions" aria-label="Open questions" data-testid="clinagent-questions">
      <div className="ca-section-title">Please decide</div>
      {props.questions.map((q, i) =>
        isStructured(q) ? (
          <fieldset key={q.id} className="ca-question" data-testid="clinagent-question" title={q.field}>
            <legend>{q.text}</legend>
            <div className="ca-choices">
              {q.options.map(o => (
                <Button
                  key={o.value}
                  small
                  className={o.value === q.default ? 'ca-choice ca-default' : 'ca-choice'}
                  title={`sets ${q.field} = ${o.value}`}
                  disabled={props.busy}
                  data-testid={`clinagent-choice-${o.value}`}
                  onClick={() => props.onAnswer(q.id, o.value)}
                >
                  {o.label}
                  {o.value === q.default ? <span className="ca-default-mark"> (default)</span> : null}
                </Button>
              ))}
            </div>
          </fieldset>
        ) : (
          <div key={i} className="ca-question" data-testid="clinagent-question">
            <label htmlFor={`ca-q-${i}`}>{String(q)}</label>
            <input
              id={`ca-q-${i}`}
              className="jp-mod-styled"
              data-testid="clinagent-answer"
              value={free[i] || ''}
              onChange={e => setFree({ ...free, [i]: e.target.value })}
            />
          </div>
        )
      )}
      {plain.length > 0 && (
        <Button
          small
          disabled={props.busy}
          onClick={() =>
            props.onFreeAnswers(
              plain
                .map(([q, i]) => (free[i] ? `${String(q)} ${free[i]}` : ''))
                .filter(Boolean)
                .join('\n')
            )
          }
        >
          Interpret again with these answers
        </Button>
      )}
    </section>
  );
}
