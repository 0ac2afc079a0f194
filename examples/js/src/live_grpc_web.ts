// Paper trading over gRPC-Web, as a browser app would do it, through the Envoy gateway:
// starts a strategy on a replay of a dataset, then streams its signals with
// StreamSignals(after_sequence), drops the connection on purpose and resumes after the last
// signal it saw. Nothing is missed and nothing repeats across the reconnect.
//
//   stratopt serve --dev --gateway             # gRPC-Web on http://127.0.0.1:8080
//   STRATOPT_GATEWAY=http://127.0.0.1:8080 STRATOPT_TOKEN=... \
//     npx tsx src/live_grpc_web.ts --dataset <dataset id> [--strategy <id>] \
//       [--after 2] [--take 5] [--bars-per-second 100]
//
// Without --strategy it creates an sma_crossover (3/8). --after is the sequence to resume
// after: the script waits until the strategy has emitted that many signals (ListSignals),
// so the first stream starts with stored history and goes on live. --take is how many
// signals to read before hanging up. Credentials: see authHeaderFromEnv in auth.ts.
//
// createGrpcWebTransport from @connectrpc/connect-node speaks the same gRPC-Web protocol as
// @connectrpc/connect-web in a browser (HTTP/1.1 here, like a browser's fetch).

import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { SignalAction, StrategyService, type Signal } from "@stratopt/api/stratopt/v1/strategy_pb";
import { authHeaderFromEnv, authInterceptor } from "./auth.ts";
import { smaCrossover, uniqueName } from "./strategies.ts";

export const DEFAULT_GATEWAY = "http://127.0.0.1:8080";

type Strategies = Client<typeof StrategyService>;

/** STRATOPT_GATEWAY: the Envoy gateway's URL (REST, gRPC-Web and gRPC on one port). */
export function gatewayUrl(env: NodeJS.ProcessEnv = process.env): string {
  const gw = env.STRATOPT_GATEWAY || DEFAULT_GATEWAY;
  return /^https?:\/\//.test(gw) ? gw : `http://${gw}`;
}

export function grpcWebTransport(header?: readonly [string, string]): Transport {
  return createGrpcWebTransport({
    baseUrl: gatewayUrl(),
    httpVersion: "1.1",
    interceptors: header ? [authInterceptor(header)] : [],
  });
}

function describe(s: Signal): string {
  const when = s.time ? timestampDate(s.time).toISOString() : "?";
  return (
    `signal #${s.sequence} ${when} ${s.symbol} ${SignalAction[s.action]} @ ${s.price.toFixed(4)}` +
    ` position ${s.position}`
  );
}

/** Waits until the strategy has emitted at least `count` signals (stored or pending). */
async function waitForSignals(client: Strategies, strategyId: string, count: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const { signals } = await client.listSignals({ strategyId, pageSize: Math.max(count, 1) });
    if (signals.length >= count) return;
    await sleep(50);
  }
  throw new Error(`the strategy did not emit ${count} signals within 30 s`);
}

/**
 * Streams signals after `after`; stops after `take` of them (hanging up, as a dropped
 * connection would) or when the server ends the stream. Returns what was received.
 */
async function stream(client: Strategies, strategyId: string, after: bigint, take: number): Promise<Signal[]> {
  const got: Signal[] = [];
  const hangUp = new AbortController();
  try {
    for await (const { signal, dropped } of client.streamSignals(
      { strategyId, afterSequence: after },
      { signal: hangUp.signal },
    )) {
      if (!signal) continue;
      console.log(`${describe(signal)}${dropped > 0n ? ` (dropped so far: ${dropped})` : ""}`);
      got.push(signal);
      if (got.length === take) {
        hangUp.abort();
        break;
      }
    }
  } catch (e) {
    if (ConnectError.from(e).code !== Code.Canceled) throw e;
  }
  return got;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dataset: { type: "string" },
      strategy: { type: "string" },
      after: { type: "string", default: "2" },
      take: { type: "string", default: "5" },
      "bars-per-second": { type: "string", default: "100" },
    },
  });
  if (!values.dataset) throw new Error("--dataset is required (a dataset id to replay)");
  const after = BigInt(values.after);
  const take = Number(values.take);

  const header = await authHeaderFromEnv(grpcWebTransport());
  const client = createClient(StrategyService, grpcWebTransport(header));
  console.log(`gRPC-Web via ${gatewayUrl()}`);

  let strategyId = values.strategy ?? "";
  if (!strategyId) {
    const { strategy } = await client.createStrategy({ strategy: smaCrossover(uniqueName("ts-live"), 3n, 8n) });
    if (!strategy) throw new Error("CreateStrategy returned no strategy");
    strategyId = strategy.id;
  }
  const { strategy } = await client.startStrategy({
    strategyId,
    datasetId: values.dataset,
    barsPerSecond: Number(values["bars-per-second"]),
  });
  console.log(`started strategy ${strategyId} (${strategy?.name}) on a replay of dataset ${values.dataset}`);

  if (after > 0n) await waitForSignals(client, strategyId, Number(after));
  console.log(`streaming after #${after}`);
  const first = await stream(client, strategyId, after, take);
  const last = first.length ? first[first.length - 1].sequence : after;
  console.log(`hung up after #${last}; resuming after #${last}`);
  const rest = await stream(client, strategyId, last, -1);
  console.log(`stream ended by the server after #${rest.length ? rest[rest.length - 1].sequence : last}`);

  const all = [...first, ...rest].map((s) => s.sequence);
  const gaps = all.filter((seq, i) => seq !== after + BigInt(i + 1)).length;
  console.log(
    `received ${all.length} signals, sequences ${all[0] ?? "-"}..${all[all.length - 1] ?? "-"}, ` +
      `${gaps === 0 ? "no gaps, no repeats" : `${gaps} out of place`}`,
  );
  if (gaps) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e instanceof ConnectError ? `${Code[e.code]}: ${e.rawMessage}` : e);
  process.exit(1);
});
