// Uploads not finished yet, kept in IndexedDB so that they carry on after a reload.
// A record says who uploads what where, its chunk hashes once known and the hashes already
// sent; the File itself (whose bytes the browser copies into the database) is kept apart
// under the same key, so that saving progress after each chunk never copies the file again.

const DATABASE = "fabric-market-uploads";
const UPLOADS = "uploads";
const FILES = "files";

let opened = null;

function database() {
  if (opened === null) {
    opened = new Promise(function (resolve, reject) {
      const request = indexedDB.open(DATABASE, 1);
      request.addEventListener("upgradeneeded", function () {
        request.result.createObjectStore(UPLOADS, { keyPath: "id", autoIncrement: true });
        request.result.createObjectStore(FILES);
      });
      request.addEventListener("success", () => resolve(request.result));
      request.addEventListener("error", () => reject(request.error));
    });
  }
  return opened;
}

// Run `work(uploads, files)` in one transaction; resolves with what it returns, once committed.
async function inTransaction(mode, work) {
  const db = await database();
  return new Promise(function (resolve, reject) {
    const transaction = db.transaction([UPLOADS, FILES], mode);
    const result = work(transaction.objectStore(UPLOADS), transaction.objectStore(FILES));
    transaction.addEventListener("complete", () => resolve(result()));
    transaction.addEventListener("error", () => reject(transaction.error));
    transaction.addEventListener("abort", () => reject(transaction.error));
  });
}

function withoutFile(record) {
  const { file, ...rest } = record;
  return rest;
}

// Keep a new upload and its file; resolves with its key.
export function pendingAdd(record) {
  return inTransaction("readwrite", function (uploads, files) {
    const added = uploads.add(withoutFile(record));
    added.addEventListener("success", () => files.put(record.file, added.result));
    return () => added.result;
  });
}

export function pendingSave(record) {
  return inTransaction("readwrite", function (uploads) {
    uploads.put(withoutFile(record));
    return () => undefined;
  });
}

export function pendingRemove(id) {
  return inTransaction("readwrite", function (uploads, files) {
    uploads.delete(id);
    files.delete(id);
    return () => undefined;
  });
}

export function pendingExists(id) {
  return inTransaction("readonly", function (uploads) {
    const count = uploads.count(id);
    return () => count.result > 0;
  });
}

// Every upload `owner` left unfinished in this browser, oldest first, with its file.
export function pendingOf(owner) {
  return inTransaction("readonly", function (uploads, files) {
    const records = uploads.getAll();
    const keys = files.getAllKeys();
    const blobs = files.getAll();
    return function () {
      const fileOf = new Map(keys.result.map((key, at) => [key, blobs.result[at]]));
      return records.result
        .filter((record) => record.owner === owner && fileOf.has(record.id))
        .map((record) => ({ ...record, file: fileOf.get(record.id) }));
    };
  });
}
