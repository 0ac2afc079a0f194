// The console's connection to stratopt: Connect-Web clients over gRPC-Web through the Envoy
// gateway that also serves this page (same origin), and the login session.
//
// Session: the access token lives in memory and sessionStorage; the refresh token in
// localStorage so a reload or a new tab stays signed in. Every refresh rotates the refresh
// token (the server revokes the old one), so the stored one is replaced each time. A call
// answered UNAUTHENTICATED is retried once after a refresh; a failed refresh signs out.
import type { DescService } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService, type User } from "@stratopt/api/stratopt/v1/auth_pb";
import { BacktestService } from "@stratopt/api/stratopt/v1/backtest_pb";
import { Permission, Role } from "@stratopt/api/stratopt/v1/common_pb";
import { ExportService } from "@stratopt/api/stratopt/v1/export_pb";
import { MarketDataService } from "@stratopt/api/stratopt/v1/market_data_pb";
import { OptimizationService } from "@stratopt/api/stratopt/v1/optimization_pb";
import { StrategyService } from "@stratopt/api/stratopt/v1/strategy_pb";
import { SystemService } from "@stratopt/api/stratopt/v1/system_pb";
import { clearSharedToken, readSharedToken, writeSharedToken } from "./shared-token";

const REFRESH_KEY = "stratopt.refreshToken";
const ACCESS_KEY = "stratopt.accessToken";
/** Refresh this long before the access token expires, so calls rarely meet an expired one. */
const REFRESH_MARGIN_MS = 30_000;

export const baseUrl: string =
  (import.meta.env.VITE_STRATOPT_GATEWAY as string | undefined) || window.location.origin;

export interface Session {
  user: User;
  permissions: Set<Permission>;
}

let accessToken = sessionStorage.getItem(ACCESS_KEY) ?? "";
let refreshTimer: number | undefined;
let refreshing: Promise<boolean> | undefined;
let current: Session | undefined;
const signedOutListeners: (() => void)[] = [];

const authHeader: Interceptor = (next) => async (req) => {
  if (accessToken) req.header.set("authorization", `Bearer ${accessToken}`);
  try {
    return await next(req);
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code !== Code.Unauthenticated || !storedRefreshToken() || req.stream) throw e;
    if (!(await refresh())) throw e;
    req.header.set("authorization", `Bearer ${accessToken}`);
    return await next(req);
  }
};

const transport = createGrpcWebTransport({ baseUrl, interceptors: [authHeader] });
/** Login, refresh and logout carry no credential of their own. */
const bareTransport = createGrpcWebTransport({ baseUrl });

function client<T extends DescService>(service: T): Client<T> {
  return createClient(service, transport);
}

export const api = {
  auth: client(AuthService),
  data: client(MarketDataService),
  strategies: client(StrategyService),
  backtests: client(BacktestService),
  jobs: client(OptimizationService),
  exports: client(ExportService),
  system: client(SystemService),
};
const bareAuth = createClient(AuthService, bareTransport);

function storedRefreshToken(): string {
  return localStorage.getItem(REFRESH_KEY) ?? "";
}

function keepTokens(access: string, refreshToken: string, accessExpires: Timestamp | undefined): void {
  accessToken = access;
  sessionStorage.setItem(ACCESS_KEY, access);
  localStorage.setItem(REFRESH_KEY, refreshToken);
  window.clearTimeout(refreshTimer);
  if (accessExpires) {
    const due = timestampDate(accessExpires).getTime() - Date.now() - REFRESH_MARGIN_MS;
    refreshTimer = window.setTimeout(() => void refresh(), Math.max(due, 1_000));
  }
}

function forget(): void {
  accessToken = "";
  current = undefined;
  window.clearTimeout(refreshTimer);
  sessionStorage.removeItem(ACCESS_KEY);
  localStorage.removeItem(REFRESH_KEY);
  void clearSharedToken();
}

/**
 * Trades the refresh token for a new pair; concurrent callers share one refresh, and tabs
 * take turns (`acrossTabs`), each using the token the previous one stored.
 */
export function refresh(): Promise<boolean> {
  refreshing ??= acrossTabs(async () => {
    // The token the previous holder of the lock stored (IndexedDB: localStorage may not
    // have caught up in this tab yet).
    const token = (await readSharedToken()) ?? storedRefreshToken();
    if (!token) return false;
    try {
      const r = await bareAuth.refreshToken({ refreshToken: token });
      keepTokens(r.accessToken, r.refreshToken, r.accessTokenExpireTime);
      await writeSharedToken(r.refreshToken); // committed before the next tab's turn
      return true;
    } catch {
      forget();
      for (const l of signedOutListeners) l();
      return false;
    }
  }).finally(() => {
    refreshing = undefined;
  });
  return refreshing;
}

/**
 * Runs `fn` while no other tab of this origin refreshes. A refresh token is good for one
 * use, and the server ends the whole session when one is presented twice, which two tabs
 * refreshing at once (both timers firing when a laptop wakes, two tabs reloaded together)
 * would do with the one token they share.
 */
async function acrossTabs<T>(fn: () => Promise<T>): Promise<T> {
  if (!("locks" in navigator)) return fn();
  let result!: T;
  await navigator.locks.request("stratopt.refresh", async () => {
    result = await fn();
  });
  return result;
}

async function loadSession(): Promise<Session> {
  const me = await api.auth.getCurrentUser({});
  current = { user: me.user!, permissions: new Set(me.permissions) };
  return current;
}

export async function login(username: string, password: string): Promise<Session> {
  const r = await bareAuth.login({ username, password });
  keepTokens(r.accessToken, r.refreshToken, r.accessTokenExpireTime);
  await writeSharedToken(r.refreshToken);
  return loadSession();
}

/** The session of a returning visitor (reload, new tab), or undefined when signed out. */
export async function resume(): Promise<Session | undefined> {
  if (!storedRefreshToken()) return undefined;
  if (!accessToken && !(await refresh())) return undefined;
  try {
    const session = await loadSession();
    if (refreshTimer === undefined) void refresh(); // restarts the timer and rotates early
    return session;
  } catch {
    forget();
    return undefined;
  }
}

export async function logout(): Promise<void> {
  const token = (await readSharedToken()) ?? storedRefreshToken();
  forget();
  if (token) await bareAuth.logout({ refreshToken: token }).catch(() => undefined);
}

/** Runs `listener` when the session ends: a failed refresh here, or a sign-out in another tab. */
export function onSignedOut(listener: () => void): void {
  signedOutListeners.push(listener);
}

// Signed out in another tab (Log out, or a refresh that failed there): the refresh token the
// tabs share is gone and the server has ended the session, so this tab signs out too: its
// listeners end its notifications (a leading tab releases their stream's lock) and show the
// login page. A sign-in in another tab replaces the token: that is no sign-out.
window.addEventListener("storage", (e) => {
  if (e.storageArea !== localStorage || (e.key !== REFRESH_KEY && e.key !== null)) return;
  if (!current || storedRefreshToken()) return;
  accessToken = "";
  current = undefined;
  window.clearTimeout(refreshTimer);
  refreshTimer = undefined;
  sessionStorage.removeItem(ACCESS_KEY);
  for (const l of signedOutListeners) l();
});

export function session(): Session | undefined {
  return current;
}

/** Whether the signed-in user holds `p`: write buttons are shown only when this is true. */
export function can(p: Permission): boolean {
  return current?.permissions.has(p) ?? false;
}

export function roleName(r: Role): string {
  return Role[r]?.toLowerCase() ?? "?";
}

/**
 * A REST call (the client-streaming upload) with the session's access token. Like the
 * gRPC-Web calls, one answered 401 (an access token that expired, say while a large file
 * was read) is sent again once after a refresh.
 */
export async function restFetch(
  path: string,
  init: RequestInit & { headers: Record<string, string> },
): Promise<Response> {
  const send = (): Promise<Response> =>
    fetch(`${baseUrl}${path}`, {
      ...init,
      headers: { ...init.headers, ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}) },
    });
  const resp = await send();
  if (resp.status !== 401 || !storedRefreshToken() || !(await refresh())) return resp;
  return send();
}

export { Permission };
