// Walks through stratopt's strategy API over gRPC: lists the strategy types, shows the field
// errors of an invalid create, creates a strategy, pages through the list, reads it back,
// updates one field with a field mask, deletes it and shows that it is gone.
//
//   STRATOPT_SERVER=127.0.0.1:50051 STRATOPT_TOKEN=... npx tsx src/main.ts
//
// Credentials: see authHeaderFromEnv in auth.ts.

import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { StrategyService } from "@stratopt/api/stratopt/v1/strategy_pb";
import { strategyClient } from "./connect.ts";
import { BadRequestSchema } from "@stratopt/api/google/rpc/error_details_pb";
import { intParam, listAll, smaCrossover, uniqueName } from "./strategies.ts";

type Strategies = Client<typeof StrategyService>;

async function printStrategyTypes(client: Strategies): Promise<void> {
  const { strategyTypes } = await client.listStrategyTypes({});
  console.log(`${strategyTypes.length} strategy types:`);
  for (const t of strategyTypes) {
    console.log(`  ${t.name.padEnd(24)} ${t.displayName}`);
  }
}

/** No name and fast above slow: the server rejects it and names every bad field at once. */
async function showInvalidCreate(client: Strategies): Promise<void> {
  try {
    await client.createStrategy({ strategy: smaCrossover("", 60n, 20n) });
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code !== Code.InvalidArgument) throw err;
    console.log(`invalid create -> ${Code[err.code]}`);
    for (const bad of err.findDetails(BadRequestSchema)) {
      for (const v of bad.fieldViolations) {
        console.log(`  ${v.field}: ${v.description}`);
      }
    }
    return;
  }
  throw new Error("the invalid create unexpectedly succeeded");
}

async function main(): Promise<void> {
  const client = await strategyClient();
  await printStrategyTypes(client);
  await showInvalidCreate(client);

  const { strategy: created } = await client.createStrategy({
    strategy: smaCrossover(uniqueName("ts-example"), 10n, 50n),
  });
  if (!created) throw new Error("CreateStrategy returned no strategy");
  console.log(`created ${created.name} id=${created.id} version=${created.version}`);

  const all = await listAll(client, { pageSize: 5 });
  console.log(`listed ${all.length} strategies`);

  const { strategy: got } = await client.getStrategy({ strategyId: created.id });
  if (!got) throw new Error("GetStrategy returned no strategy");
  console.log(`read back ${got.name}: fast=${intParam(got, "fast")} slow=${intParam(got, "slow")}`);

  const { strategy: updated } = await client.updateStrategy({
    strategy: { id: created.id, description: "tuned for hourly bars" },
    updateMask: { paths: ["description"] },
  });
  if (!updated) throw new Error("UpdateStrategy returned no strategy");
  console.log(`updated description=${JSON.stringify(updated.description)} version=${updated.version}`);

  await client.deleteStrategy({ strategyId: created.id });
  console.log(`deleted ${created.id}`);

  try {
    await client.getStrategy({ strategyId: created.id });
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code !== Code.NotFound) throw err;
    console.log(`get after delete -> ${Code[err.code]}: ${err.rawMessage}`);
    return;
  }
  throw new Error("the deleted strategy is still there");
}

main().catch((e: unknown) => {
  console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
