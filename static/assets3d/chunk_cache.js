// Booth assets fetched by hash through the chunk API and kept in this browser by hash.
//
// Every chunk is stored in IndexedDB under its BLAKE3 hash once it has been checked against
// it (with hash-wasm when the page loads it), so a second visit to a booth, in this tab or a
// later one, downloads nothing: a chunk's bytes never change under its name. An asset is its
// chunks in order; `stats` counts what came from the network and what from the cache.

const DB_NAME = "fabric-chunks";
const STORE = "chunks";

function openDb() {
  return new Promise(function (resolve) {
    if (!window.indexedDB) {
      resolve(null);
      return;
    }
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => resolve(null); // private windows may refuse: fetch every time
  });
}

function idb(db, mode, action) {
  return new Promise(function (resolve) {
    if (!db) {
      resolve(undefined);
      return;
    }
    const request = action(db.transaction(STORE, mode).objectStore(STORE));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => resolve(undefined);
  });
}

export class ChunkRefused extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export class ChunkCache {
  // headers(): the request headers for chunk fetches (a visitor's Bearer token, say).
  constructor(headers) {
    this.headers = headers || (() => ({}));
    this.db = openDb();
    this.assets = new Map(); // asset key → Promise<ArrayBuffer>, for this page's life
    this.stats = { fetched: 0, fromCache: 0, bytesFetched: 0 };
  }

  async chunk(part) {
    const db = await this.db;
    const kept = await idb(db, "readonly", (store) => store.get(part.hash));
    if (kept instanceof ArrayBuffer) {
      this.stats.fromCache += 1;
      return kept;
    }
    const response = await fetch("/chunks/" + part.hash, {
      headers: this.headers(),
      credentials: "same-origin",
    });
    if (!response.ok) {
      throw new ChunkRefused(`chunk ${part.hash.slice(0, 12)}… was refused (${response.status})`, response.status);
    }
    const bytes = await response.arrayBuffer();
    if (window.hashwasm) {
      const actual = await window.hashwasm.blake3(new Uint8Array(bytes));
      if (actual !== part.hash) throw new ChunkRefused(`chunk ${part.hash.slice(0, 12)}… arrived damaged`, 0);
    }
    this.stats.fetched += 1;
    this.stats.bytesFetched += bytes.byteLength;
    await idb(db, "readwrite", (store) => store.put(bytes, part.hash));
    return bytes;
  }

  // The asset's bytes: its chunks, fetched at most once each, concatenated in order.
  asset(asset) {
    const key = assetKey(asset);
    if (!this.assets.has(key)) {
      const loading = Promise.all(asset.chunks.map((part) => this.chunk(part))).then(function (parts) {
        if (parts.length === 1) return parts[0];
        const out = new Uint8Array(asset.size);
        parts.forEach((bytes, i) => out.set(new Uint8Array(bytes), asset.chunks[i].offset));
        return out.buffer;
      });
      loading.catch(() => this.assets.delete(key)); // a refusal may pass: try again next time
      this.assets.set(key, loading);
    }
    return this.assets.get(key);
  }
}

// Assets with the same chunks are the same bytes, whatever their names.
export function assetKey(asset) {
  return asset.chunks.map((part) => part.hash).join(",");
}
