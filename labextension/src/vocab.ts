/**
 * Enum values read from the server's JSON Schema (no hand-copied lists) and the words a clinician reads for them.
 */
import apiSchema from './api-schema.json';

type Defs = Record<string, { properties?: Record<string, { enum?: string[] }> }>;

const defs = (apiSchema as unknown as { $defs: Defs }).$defs;

/** The allowed values of `model.field` as the server's schema lists them. */
export function enumValues(model: string, field: string): string[] {
  return defs[model]?.properties?.[field]?.enum ?? [];
}

export const TASK_TYPES = enumValues('TaskSpec', 'task_type');
export const MODALITIES = enumValues('TaskSpec', 'modality');
export const METRICS = enumValues('MetricSpec', 'name');
export const RISKS = enumValues('TaskSpec', 'risk_preference');

const LABELS: Record<string, string> = {
  binary_classification: 'Finding present or not',
  multiclass_classification: 'Which of several classes',
  detection: 'Find and box the finding',
  dermoscopy: 'Dermoscopy',
  chest_xray: 'Chest X-ray',
  musculoskeletal_xray: 'Musculoskeletal X-ray',
  other: 'Other images',
  auroc: 'AUROC (ranking, any threshold)',
  sensitivity_at_specificity: 'Sensitivity at a fixed specificity',
  specificity_at_sensitivity: 'Specificity at a fixed sensitivity',
  balanced_accuracy: 'Balanced accuracy',
  f1: 'F1 score',
  map50: 'mAP at IoU 0.5',
  sensitivity: 'Missing a case is worse',
  specificity: 'A false alarm is worse',
  balanced: 'Both mistakes weigh the same',
  mitigate: 'Stop the model relying on it',
  report: 'Only report it',
  kept: 'kept',
  discarded: 'discarded',
  baseline: 'baseline',
  failed: 'failed',
  crash: 'crashed',
  timeout: 'ran out of time'
};

/** A clinician's words for a machine value; unknown values read as words (`chest_drain` → `chest drain`). */
export function label(value: string): string {
  return LABELS[value] ?? value.replace(/_/g, ' ');
}

/** A measured result's name (`sensitivity` the metric, not the risk preference of the same name). */
export function resultLabel(key: string): string {
  const names: Record<string, string> = {
    auroc: 'AUROC',
    auroc_macro: 'Macro AUROC',
    sensitivity: 'Sensitivity (cases found)',
    specificity: 'Specificity (normals cleared)',
    balanced_accuracy: 'Balanced accuracy',
    map50: 'mAP at IoU 0.5',
    threshold: 'Threshold'
  };
  return names[key] ?? label(key);
}

/** The selection metric's name as a person writes it. */
export function metricLabel(key: string): string {
  const names: Record<string, string> = {
    val_group_balanced_auroc: 'group-balanced AUROC',
    group_balanced_auroc: 'group-balanced AUROC',
    val_auroc: 'AUROC',
    val_worst_group_auroc: 'worst-group AUROC',
    val_loss: 'loss'
  };
  return names[key] ?? label(key);
}

/** 0.8123 → "0.812"; null → "–". */
export function fmt(value: unknown, digits = 3): string {
  if (typeof value === 'number') {
    return Number.isInteger(value) ? String(value) : value.toFixed(digits);
  }
  return value === null || value === undefined ? '–' : JSON.stringify(value);
}
