// Parameter forms generated from a strategy type's ParameterSpec list: one control per
// parameter, bounded and stepped as the spec says, and read back as ParameterValue maps.
import { create } from "@bufbuild/protobuf";
import {
  ParameterKind,
  ParameterValueSchema,
  type ParameterSpec,
  type ParameterValue,
} from "@stratopt/api/stratopt/v1/common_pb";
import { field, h, input, select } from "./dom";

export function valueText(v: ParameterValue | undefined): string {
  if (!v) return "";
  switch (v.kind.case) {
    case "intValue":
      return v.kind.value.toString();
    case "doubleValue":
      return String(v.kind.value);
    case "stringValue":
      return v.kind.value;
    default:
      return "";
  }
}

export function valueNumber(v: ParameterValue | undefined): number {
  if (!v) return NaN;
  if (v.kind.case === "intValue") return Number(v.kind.value);
  if (v.kind.case === "doubleValue") return v.kind.value;
  return NaN;
}

export function paramsText(m: Record<string, ParameterValue>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k}=${valueText(v)}`)
    .join(", ");
}

export interface ParamForm {
  el: HTMLElement;
  values(): Record<string, ParameterValue>;
}

/** Controls named `<prefix>.<param>` (e.g. strategy.parameters.fast), as server errors name them. */
export function paramForm(
  specs: ParameterSpec[],
  prefix: string,
  initial: Record<string, ParameterValue> = {},
  readOnly = false,
): ParamForm {
  const controls = new Map<string, HTMLInputElement | HTMLSelectElement>();
  const fields = specs.map((s) => {
    const start = valueText(initial[s.name] ?? s.defaultValue);
    let control: HTMLInputElement | HTMLSelectElement;
    if (s.kind === ParameterKind.CATEGORICAL) {
      control = select(
        s.choices.map((c) => [c, c]),
        { name: s.name, disabled: readOnly },
        start,
      );
    } else {
      const isInt = s.kind === ParameterKind.INT;
      control = input({
        type: "number",
        name: s.name,
        value: start,
        min: s.min || s.max ? s.min : undefined,
        max: s.min || s.max ? s.max : undefined,
        step: isInt ? Math.max(1, s.step || 1) : s.step || "any",
        required: true,
        disabled: readOnly,
      });
    }
    controls.set(s.name, control);
    const range = s.kind === ParameterKind.CATEGORICAL ? s.choices.join(" | ") : `${s.min} … ${s.max}`;
    return field(
      s.name,
      control,
      `${prefix}.${s.name}`,
      `${s.description ? `${s.description} · ` : ""}${range}`,
    );
  });
  return {
    el: h("div", { class: "grid params" }, fields),
    values() {
      const out: Record<string, ParameterValue> = {};
      for (const s of specs) {
        const raw = controls.get(s.name)!.value.trim();
        if (raw === "") continue;
        let kind: ParameterValue["kind"];
        if (s.kind === ParameterKind.INT) kind = { case: "intValue", value: BigInt(Math.round(Number(raw))) };
        else if (s.kind === ParameterKind.FLOAT) kind = { case: "doubleValue", value: Number(raw) };
        else kind = { case: "stringValue", value: raw };
        out[s.name] = create(ParameterValueSchema, { kind });
      }
      return out;
    },
  };
}
