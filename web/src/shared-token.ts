// The refresh token as the tabs share it: in IndexedDB, whose committed writes are what the
// next reader in any tab gets. localStorage, which also holds it (for the synchronous
// "signed in?" checks), reaches other tabs a moment late; a tab refreshing with a token
// another tab has just used would end the session (api.ts, `refresh`).
const DB_NAME = "stratopt";
const STORE = "session";
const KEY = "refreshToken";

let opened: Promise<IDBDatabase> | undefined;

function database(): Promise<IDBDatabase> {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB unavailable"));
  });
  return opened;
}

/** Runs one request in its own transaction; resolves once the transaction has committed. */
async function transact<T>(
  mode: IDBTransactionMode,
  request: (s: IDBObjectStore) => IDBRequest<T>,
): Promise<T> {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = request(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

/** The shared refresh token, or undefined when none is stored (or IndexedDB is unavailable). */
export async function readSharedToken(): Promise<string | undefined> {
  try {
    const value: unknown = await transact("readonly", (s) => s.get(KEY));
    return typeof value === "string" && value ? value : undefined;
  } catch {
    return undefined;
  }
}

export async function writeSharedToken(token: string): Promise<void> {
  await transact("readwrite", (s) => s.put(token, KEY)).catch(() => undefined);
}

export async function clearSharedToken(): Promise<void> {
  await transact("readwrite", (s) => s.delete(KEY)).catch(() => undefined);
}
