// Tone-of-voice cues: turns whatever numeric fields a `tone` event carries into labelled values.

// Known fields get a translated label; any other numeric field is shown under its own name.
const LABELS = {
  pitch_hz: "tone.pitch",
  pitch_median_hz: "tone.pitch",
  pitch_range_hz: "tone.pitch_range",
  loudness_db: "tone.loudness",
  loudness_dbfs: "tone.loudness",
  rate_sps: "tone.rate",
  speaking_rate_sps: "tone.rate",
  duration_s: "tone.duration",
  voiced_s: "tone.voiced",
  syllables: "tone.syllables",
};
const SKIPPED = new Set(["type", "turn", "item_id", "role", "response_id"]);
const UNITS = [
  ["_pct", "%", 1],
  ["_dbfs", "dBFS", 0],
  ["_db", "dB", 0],
  ["_hz", "Hz", 0],
  ["_sps", "unit.sps", 1],
  ["_ms", "ms", 0],
  ["_s", "s", 1],
];

// [{field, label, value}] for the numeric fields of `event`, in the order they came.
export function toneCues(event, t) {
  const cues = [];
  for (const [field, raw] of Object.entries(event)) {
    if (SKIPPED.has(field) || typeof raw !== "number" || !Number.isFinite(raw)) continue;
    const [suffix, unit, digits] = UNITS.find(([end]) => field.endsWith(end)) ?? ["", "", 2];
    const label = LABELS[field] ? t(LABELS[field]) : humanize(field.slice(0, field.length - suffix.length));
    const number = String(Number(raw.toFixed(digits)));
    const unitText = unit.startsWith("unit.") ? t(unit) : unit;
    cues.push({ field, label, value: unitText ? `${number} ${unitText}` : number });
  }
  return cues;
}

function humanize(name) {
  const words = name.replaceAll("_", " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}
