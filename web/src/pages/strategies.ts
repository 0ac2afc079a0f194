// Strategies: the type library, parameter forms generated from each type's spec, create and
// edit (optimistic concurrency through the etag), and sharing with other users.
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { RiskLevel, StrategyCategory } from "@stratopt/api/stratopt/v1/common_pb";
import {
  RunState,
  StrategyAccess,
  StrategySchema,
  type Strategy,
  type StrategyType,
} from "@stratopt/api/stratopt/v1/strategy_pb";
import { api, can, Permission, session } from "../api";
import { button, busy, card, field, h, input, mount, select, table } from "../dom";
import { clearErrors, showError } from "../errors";
import { enumLabel, when } from "../format";
import { navigate, toast, toastError, type PageContext } from "../page";
import { paramForm, paramsText } from "../params";

export async function allStrategies(): Promise<Strategy[]> {
  const out: Strategy[] = [];
  let pageToken = "";
  do {
    const r = await api.strategies.listStrategies({ pageSize: 200, pageToken, orderBy: "name" });
    out.push(...r.strategies);
    pageToken = r.nextPageToken;
  } while (pageToken && out.length < 2_000);
  return out;
}

export async function strategiesPage({ root, args }: PageContext): Promise<void> {
  const [types, strategies] = await Promise.all([
    api.strategies.listStrategyTypes({}).then((r) => r.strategyTypes),
    allStrategies(),
  ]);
  const [id, sub] = args;
  if (id === "new") return editor(root, types, undefined, sub);
  if (id) {
    const s = (await api.strategies.getStrategy({ strategyId: id })).strategy!;
    return editor(root, types, s);
  }
  const writable = can(Permission.WRITE_STRATEGIES);
  mount(
    root,
    h("h1", {}, "Strategies"),
    card(
      "Your strategies",
      strategies.length
        ? table(
            ["Name", "Type", "Parameters", "Symbols", "TF", "Run", "Owner", "Updated"],
            strategies.map((s) => [
              h("a", { href: `#/strategies/${s.id}`, "data-strategy": s.name }, s.name),
              s.strategyType,
              paramsText(s.parameters),
              s.symbols.join(", "),
              s.timeframe,
              enumLabel(RunState, s.runState),
              s.ownerUsername,
              when(s.updateTime),
            ]),
          )
        : h("p", { class: "muted" }, "No strategies yet."),
    ),
    card(
      "Type library",
      h(
        "div",
        { class: "types" },
        types.map((t) =>
          h(
            "article",
            { class: "type", "data-type": t.name },
            h("h3", {}, t.displayName || t.name),
            h(
              "p",
              { class: "muted" },
              `${enumLabel(StrategyCategory, t.category)} · risk ${enumLabel(RiskLevel, t.riskLevel)}`,
            ),
            h("p", {}, t.description),
            h("p", { class: "muted" }, t.parameters.map((p) => p.name).join(", ")),
            writable
              ? h("a", { class: "button", href: `#/strategies/new/${t.name}` }, "Use this type")
              : null,
          ),
        ),
      ),
    ),
  );
}

function csv(s: string): string[] {
  return s
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
}

function editor(root: HTMLElement, types: StrategyType[], existing?: Strategy, typeName?: string): void {
  const me = session()?.user;
  const mine = !existing || existing.ownerId === me?.id;
  const writable = can(Permission.WRITE_STRATEGIES);
  const readOnly = !writable;
  const typeSelect = select(
    types.map((t) => [t.name, t.displayName || t.name]),
    { name: "strategy_type", disabled: !!existing || readOnly },
    existing?.strategyType ?? typeName ?? types[0]?.name,
  );
  const name = input({ name: "name", value: existing?.name ?? "", required: true, disabled: readOnly });
  const description = input({ name: "description", value: existing?.description ?? "", disabled: readOnly });
  const symbols = input({
    name: "symbols",
    value: existing?.symbols.join(", ") ?? "SYNTH",
    disabled: readOnly,
  });
  const timeframe = input({ name: "timeframe", value: existing?.timeframe ?? "1h", disabled: readOnly });
  const tags = input({ name: "tags", value: existing?.tags.join(", ") ?? "", disabled: readOnly });
  const paramsHost = h("div");
  let params = paramForm([], "strategy.parameters");
  const drawParams = () => {
    const t = types.find((x) => x.name === typeSelect.value);
    params = paramForm(t?.parameters ?? [], "strategy.parameters", existing?.parameters ?? {}, readOnly);
    mount(paramsHost, t ? h("p", { class: "muted" }, t.description) : null, params.el);
  };
  typeSelect.addEventListener("change", drawParams);
  drawParams();
  const save = h("button", { type: "submit", "data-testid": "save-strategy" }, existing ? "Save" : "Create");
  const form = h(
    "form",
    { class: "stack", novalidate: true, "data-testid": "strategy-form" },
    h("div", { class: "grid" }, [
      field("Type", typeSelect, "strategy.strategy_type"),
      field("Name", name, "strategy.name"),
      field("Description", description, "strategy.description"),
      field("Symbols", symbols, "strategy.symbols", "comma separated"),
      field("Timeframe", timeframe, "strategy.timeframe"),
      field("Tags", tags, "strategy.tags", "comma separated"),
    ]),
    h("h3", {}, "Parameters"),
    paramsHost,
    writable ? save : null,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const strategy = create(StrategySchema, {
      id: existing?.id ?? "",
      name: name.value.trim(),
      description: description.value.trim(),
      strategyType: typeSelect.value,
      parameters: params.values(),
      symbols: csv(symbols.value),
      timeframe: timeframe.value.trim(),
      tags: csv(tags.value),
      etag: existing?.etag ?? "",
    });
    void busy(save, async () => {
      try {
        if (existing) {
          const paths = ["name", "description", "parameters", "symbols", "timeframe", "tags"];
          const r = await api.strategies.updateStrategy({
            strategy,
            updateMask: create(FieldMaskSchema, { paths }),
          });
          toast(`Saved ${r.strategy!.name} (version ${r.strategy!.version})`);
          navigate(`strategies/${r.strategy!.id}`);
        } else {
          const r = await api.strategies.createStrategy({ strategy });
          toast(`Created ${r.strategy!.name}`);
          navigate(`strategies/${r.strategy!.id}`);
        }
      } catch (e) {
        showError(form, e);
      }
    });
  });
  mount(
    root,
    h("h1", {}, existing ? existing.name : "New strategy"),
    h("p", {}, h("a", { href: "#/strategies" }, "← all strategies")),
    card(existing ? `Edit (version ${existing.version}, owner ${existing.ownerUsername})` : "Create", form),
    existing
      ? h(
          "p",
          { class: "actions" },
          can(Permission.RUN_BACKTESTS)
            ? h("a", { class: "button", href: `#/backtest?strategy=${existing.id}` }, "Backtest")
            : null,
          can(Permission.RUN_OPTIMIZATIONS)
            ? h("a", { class: "button", href: `#/optimize?strategy=${existing.id}` }, "Optimize")
            : null,
          can(Permission.EXPORT)
            ? h("a", { class: "button", href: `#/exports?strategy=${existing.id}` }, "Pine Script")
            : null,
          can(Permission.DELETE_STRATEGIES) && mine
            ? button(
                "Delete",
                (ev) =>
                  void busy(ev.currentTarget as HTMLButtonElement, async () => {
                    if (!window.confirm(`Delete ${existing.name}?`)) return;
                    try {
                      await api.strategies.deleteStrategy({ strategyId: existing.id });
                      navigate("strategies");
                    } catch (e) {
                      toastError(e);
                    }
                  }),
                { class: "danger" },
              )
            : null,
        )
      : null,
    existing && mine ? sharing(existing) : null,
  );
}

function sharing(s: Strategy): HTMLElement {
  const list = h("div", {}, "Loading…");
  const canShare = can(Permission.SHARE_STRATEGIES);
  const reload = async () => {
    const { shares } = await api.strategies.listStrategyShares({ strategyId: s.id });
    mount(
      list,
      shares.length
        ? table(
            ["User", "Access", "Since", ""],
            shares.map((x) => [
              x.username,
              x.access.map((a) => enumLabel(StrategyAccess, a)).join(", "),
              when(x.createTime),
              canShare
                ? button(
                    "Unshare",
                    () =>
                      void api.strategies
                        .unshareStrategy({ strategyId: s.id, username: x.username })
                        .then(reload, toastError),
                    { class: "secondary" },
                  )
                : "",
            ]),
          )
        : h("p", { class: "muted" }, "Not shared."),
    );
  };
  void reload().catch(toastError);
  if (!canShare) return card("Sharing", list);
  const username = input({ name: "username", required: true });
  const boxes = [StrategyAccess.READ, StrategyAccess.EXECUTE, StrategyAccess.WRITE].map((a) => {
    const box = input({ type: "checkbox", name: "access", value: a, checked: a === StrategyAccess.READ });
    return [a, box, h("label", { class: "check" }, box, enumLabel(StrategyAccess, a))] as const;
  });
  const go = h("button", { type: "submit" }, "Share");
  const form = h(
    "form",
    { class: "stack", novalidate: true },
    h(
      "div",
      { class: "grid" },
      field("Username", username, "username"),
      h(
        "div",
        { class: "field", "data-field": "access" },
        h("span", {}, "Access"),
        boxes.map((b) => b[2]),
      ),
    ),
    go,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(form);
    void busy(go, async () => {
      try {
        await api.strategies.shareStrategy({
          strategyId: s.id,
          username: username.value.trim(),
          access: boxes.filter((b) => b[1].checked).map((b) => b[0]),
        });
        username.value = "";
        await reload();
      } catch (e) {
        showError(form, e);
      }
    });
  });
  return card("Sharing", list, form);
}
