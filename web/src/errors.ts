// Server errors as the user sees them. Every failure is a google.rpc.Status: over gRPC-Web its
// details travel in the grpc-status-details-bin trailer, which Connect decodes; over REST they
// are the JSON body. BadRequest field violations are shown beside the fields they name (each
// control carries its request field path in data-field), the rest in the form's banner.
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "@stratopt/api/google/rpc/error_details_pb";
import { h } from "./dom";

export interface Violation {
  field: string;
  description: string;
}

export interface Problem {
  code: string;
  message: string;
  violations: Violation[];
}

export function problemOf(e: unknown): Problem {
  if (e instanceof RestError) return e.problem;
  const err = ConnectError.from(e);
  const violations = err
    .findDetails(BadRequestSchema)
    .flatMap((b) => b.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
  return { code: Code[err.code] ?? String(err.code), message: err.rawMessage, violations };
}

/** A google.rpc.Status from a REST call (the JSON mapping, as Envoy transcodes it). */
export class RestError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.message);
  }

  static fromJson(status: number, body: unknown): RestError {
    const s = (body ?? {}) as {
      code?: number;
      message?: string;
      details?: { fieldViolations?: Violation[] }[];
    };
    const violations = (s.details ?? []).flatMap((d) =>
      (d.fieldViolations ?? []).map((v) => ({ field: v.field, description: v.description })),
    );
    const code = s.code !== undefined ? (Code[s.code] ?? String(s.code)) : `HTTP ${status}`;
    return new RestError({ code, message: s.message ?? `HTTP ${status}`, violations });
  }
}

/** The control a violation names: exact path first, then the longest suffix match. */
function controlFor(scope: HTMLElement, path: string): HTMLElement | null {
  const exact = scope.querySelector<HTMLElement>(`[data-field="${CSS.escape(path)}"]`);
  if (exact) return exact;
  const parts = path.split(".");
  for (let i = 1; i < parts.length; i++) {
    const tail = parts.slice(i).join(".");
    const hit = scope.querySelector<HTMLElement>(`[data-field="${CSS.escape(tail)}"]`);
    if (hit) return hit;
  }
  // A map entry such as parameters[fast] or parameters.fast
  const bracket = path.replace(/\[([^\]]+)\]/g, ".$1");
  return bracket !== path ? controlFor(scope, bracket) : null;
}

export function clearErrors(scope: HTMLElement): void {
  for (const el of scope.querySelectorAll(".field-error, .form-error")) el.remove();
  for (const el of scope.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** Shows `e` inside `scope` (a form or card); returns the problem for callers that branch on it. */
export function showError(scope: HTMLElement, e: unknown): Problem {
  clearErrors(scope);
  const p = problemOf(e);
  const unplaced: Violation[] = [];
  for (const v of p.violations) {
    const control = controlFor(scope, v.field);
    if (!control) {
      unplaced.push(v);
      continue;
    }
    control.setAttribute("aria-invalid", "true");
    control.closest("details")?.setAttribute("open", ""); // never hide an error in a folded section
    const note = h("div", { class: "field-error", role: "alert", "data-error-for": v.field }, v.description);
    (control.closest(".field") ?? control).appendChild(note);
  }
  const banner = h(
    "div",
    { class: "form-error", role: "alert" },
    h("strong", {}, p.code.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase()),
    ": ",
    p.violations.length && !unplaced.length ? "check the fields marked below" : p.message,
    unplaced.length
      ? h(
          "ul",
          {},
          unplaced.map((v) => h("li", {}, `${v.field}: ${v.description}`)),
        )
      : null,
  );
  scope.prepend(banner);
  return p;
}
