// Small helpers around StrategyService that the example and its tests share.

import { randomBytes } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  type ListStrategiesRequestSchema,
  type Strategy,
  type StrategySchema,
  StrategyService,
} from "@stratopt/api/stratopt/v1/strategy_pb";

/** A simple moving-average crossover; int64 parameters are bigints in TypeScript. */
export function smaCrossover(name: string, fast: bigint, slow: bigint): MessageInitShape<typeof StrategySchema> {
  return {
    name,
    description: "created by the TypeScript example",
    strategyType: "sma_crossover",
    parameters: {
      fast: { kind: { case: "intValue", value: fast } },
      slow: { kind: { case: "intValue", value: slow } },
    },
    symbols: ["BTCUSDT"],
    timeframe: "1h",
    tags: ["example"],
  };
}

/** Names are unique per owner: a random suffix keeps runs from colliding. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString("hex")}`;
}

/** Follows nextPageToken until the last page; `filter` is the first page's request. */
export async function listAll(
  client: Client<typeof StrategyService>,
  filter: MessageInitShape<typeof ListStrategiesRequestSchema>,
): Promise<Strategy[]> {
  const all: Strategy[] = [];
  let pageToken = "";
  do {
    const page = await client.listStrategies({ ...filter, pageToken });
    all.push(...page.strategies);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

/** Reads an int parameter, or undefined when it is missing or not an int. */
export function intParam(s: Strategy, name: string): bigint | undefined {
  const kind = s.parameters[name]?.kind;
  return kind?.case === "intValue" ? kind.value : undefined;
}
