/**
 * Small pieces shared by the sidebar's sections.
 */
import React, { useState } from 'react';
import { caretDownIcon, caretRightIcon } from '@jupyterlab/ui-components';

/** A section with a title that folds; `summary` is shown beside the title while folded. */
export function Fold(props: {
  title: string;
  summary?: string;
  open?: boolean;
  testid?: string;
  children: React.ReactNode;
}): JSX.Element {
  const [open, setOpen] = useState(Boolean(props.open));
  const Icon = open ? caretDownIcon : caretRightIcon;
  return (
    <div className="ca-fold" data-testid={props.testid}>
      <button
        className="ca-fold-head"
        aria-expanded={open}
        onClick={() => setOpen(!open)}
        data-testid={props.testid ? `${props.testid}-toggle` : undefined}
      >
        <Icon.react tag="span" className="ca-fold-icon" />
        <span className="ca-fold-title">{props.title}</span>
        {!open && props.summary ? <span className="ca-fold-summary">{props.summary}</span> : null}
      </button>
      {open ? <div className="ca-fold-body">{props.children}</div> : null}
    </div>
  );
}

/** A labelled row of the spec card: the label above the control, both the panel's width. */
export function Field(props: { label: string; htmlFor: string; hint?: string; children: React.ReactNode }): JSX.Element {
  return (
    <div className="ca-field">
      <label htmlFor={props.htmlFor} title={props.hint}>
        {props.label}
      </label>
      {props.children}
    </div>
  );
}
