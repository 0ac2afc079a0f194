// Runs against a live server; skips unless STRATOPT_SERVER and a credential are set.
// tests/client/test_js_client.py runs it against a fresh server: `npm test`.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { StrategyService } from "@stratopt/api/stratopt/v1/strategy_pb";
import { hasCredentials } from "./auth.ts";
import { strategyClient, transport } from "./connect.ts";
import { BadRequestSchema } from "@stratopt/api/google/rpc/error_details_pb";
import { intParam, listAll, smaCrossover, uniqueName } from "./strategies.ts";

const skip =
  process.env.STRATOPT_SERVER && hasCredentials()
    ? false
    : "set STRATOPT_SERVER and STRATOPT_TOKEN (or another credential) to run against a server";

/** Awaits a call that must fail, and returns its ConnectError. */
async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (e) {
    return ConnectError.from(e);
  }
  assert.fail("the call succeeded");
}

describe("StrategyService over gRPC", { skip }, () => {
  let client: Client<typeof StrategyService>;
  const created: string[] = [];

  before(async () => {
    client = await strategyClient();
  });

  after(async () => {
    for (const strategyId of created) {
      await client.deleteStrategy({ strategyId }).catch((e: unknown) => {
        if (ConnectError.from(e).code !== Code.NotFound) throw e;
      });
    }
  });

  async function create(name: string, fast = 10n, tags: string[] = []) {
    const { strategy } = await client.createStrategy({
      strategy: { ...smaCrossover(name, fast, 50n), tags },
    });
    assert.ok(strategy, "CreateStrategy returned no strategy");
    created.push(strategy.id);
    return strategy;
  }

  test("lists sma_crossover with its fast and slow parameters", async () => {
    const { strategyTypes } = await client.listStrategyTypes({});
    const sma = strategyTypes.find((t) => t.name === "sma_crossover");
    assert.ok(sma, `sma_crossover missing from ${strategyTypes.length} types`);
    assert.deepEqual(
      sma.parameters.map((p) => p.name),
      ["fast", "slow"],
    );
  });

  test("creates, reads, updates with a field mask and deletes a strategy", async () => {
    const name = uniqueName("ts-test");
    const s = await create(name);
    assert.equal(s.name, name);
    assert.equal(s.version, 1n);

    const { strategy: got } = await client.getStrategy({ strategyId: s.id });
    assert.ok(got);
    assert.equal(got.strategyType, "sma_crossover");
    assert.equal(intParam(got, "fast"), 10n);
    assert.equal(intParam(got, "slow"), 50n);

    // Only the masked field changes, although the request leaves name and parameters empty.
    const { strategy: updated } = await client.updateStrategy({
      strategy: { id: s.id, description: "updated by ts test" },
      updateMask: { paths: ["description"] },
    });
    assert.ok(updated);
    assert.equal(updated.description, "updated by ts test");
    assert.equal(updated.name, name);
    assert.equal(intParam(updated, "slow"), 50n);
    assert.equal(updated.version, s.version + 1n);

    await client.deleteStrategy({ strategyId: s.id });
    const err = await rejection(client.getStrategy({ strategyId: s.id }));
    assert.equal(err.code, Code.NotFound, err.message);
  });

  test("an invalid create names every bad field in BadRequest details", async () => {
    const err = await rejection(client.createStrategy({ strategy: smaCrossover("", 60n, 20n) }));
    assert.equal(err.code, Code.InvalidArgument, err.message);
    const violations = err.findDetails(BadRequestSchema).flatMap((d) => d.fieldViolations);
    const fields = violations.map((v) => v.field);
    assert.ok(fields.includes("strategy.name"), `violations: ${fields.join(", ")}`);
    assert.ok(
      fields.some((f) => f.startsWith("strategy.parameters.")),
      `no parameter violation in: ${fields.join(", ")}`,
    );
    for (const v of violations) {
      assert.notEqual(v.description, "", `violation of ${v.field} has no description`);
    }
  });

  test("pages through every matching strategy exactly once", async () => {
    const tag = uniqueName("ts-page");
    const want = new Set<string>();
    for (const fast of [5n, 6n, 7n]) {
      want.add((await create(uniqueName("ts-page"), fast, [tag])).id);
    }

    const first = await client.listStrategies({ pageSize: 2, tags: [tag] });
    assert.equal(first.strategies.length, 2);
    assert.notEqual(first.nextPageToken, "");
    assert.equal(first.totalSize, 3n);

    const ids = (await listAll(client, { pageSize: 2, tags: [tag] })).map((s) => s.id);
    assert.equal(ids.length, new Set(ids).size, `listed twice: ${ids.join(", ")}`);
    assert.deepEqual(new Set(ids), want);
  });

  test("a call without credentials is unauthenticated", async () => {
    const anonymous = createClient(StrategyService, transport());
    const err = await rejection(anonymous.listStrategyTypes({}));
    assert.equal(err.code, Code.Unauthenticated, err.message);
  });
});
