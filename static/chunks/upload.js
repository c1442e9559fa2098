// The upload page: cut each file into 1 MiB chunks, hash them with BLAKE3, ask which the
// namespace lacks, PUT only those, then record the asset. Unfinished uploads are kept in
// IndexedDB and carry on by themselves when the page is opened again.

import { RequestRefused, formatBytes, putChunk, sendJson } from "./api.js";
import { pendingAdd, pendingExists, pendingOf, pendingRemove, pendingSave } from "./pending.js";
import { UploadRow } from "./upload_row.js";

const CHUNK_BYTES = 1 << 20;
const MISSING_BATCH = 1000; // the store answers at most 10,000 hashes a question

const uploader = document.getElementById("uploader");
const owner = uploader.dataset.user;
const target = document.getElementById("target");
const input = document.getElementById("files");
const dropzone = document.getElementById("dropzone");
const storageNote = document.getElementById("storage-note");
let leaving = false; // requests cut off by a reload are not failures to report
let queue = Promise.resolve(); // one file at a time, in the order given
const REMOVED = new Error("removed"); // thrown where an upload removed meanwhile stops

function goOn(work) {
  if (work.removed) {
    throw REMOVED;
  }
}

// A key of this upload, sent each time the page records it: recorded twice (a reload just
// after the market answered, before this browser forgot the upload), it is still one asset.
function newUploadKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function chunkOf(file, index) {
  return file.slice(index * CHUNK_BYTES, Math.min(file.size, (index + 1) * CHUNK_BYTES));
}

async function keep(work) {
  if (work.record.id === undefined) {
    return;
  }
  try {
    await pendingSave(work.record);
  } catch {
    work.row.tell("This browser could not save the upload's progress: after a reload it may "
      + "hash the file again (chunks already stored are still not sent twice).");
  }
}

async function hashChunks(work) {
  const { file } = work.record;
  const count = Math.ceil(file.size / CHUNK_BYTES);
  const hasher = await hashwasm.createBLAKE3();
  const hashes = [];
  for (let index = 0; index < count; index += 1) {
    goOn(work);
    const chunk = chunkOf(file, index);
    hasher.init();
    hasher.update(new Uint8Array(await chunk.arrayBuffer()));
    hashes.push(hasher.digest("hex"));
    const hashed = Math.min(file.size, (index + 1) * CHUNK_BYTES);
    work.row.progress("hashing", hashed, "Hashing: chunk " + (index + 1) + " of " + count
      + " (" + formatBytes(hashed) + " of " + formatBytes(file.size) + ")…");
  }
  return hashes;
}

async function missingChunks(record) {
  const unique = [...new Set(record.hashes)];
  const missing = new Set();
  for (let start = 0; start < unique.length; start += MISSING_BATCH) {
    const answer = await sendJson("POST", "/chunks/missing", {
      namespace: String(record.namespaceId),
      hashes: unique.slice(start, start + MISSING_BATCH),
    }, "Asking which chunks the market already has");
    answer.missing.forEach((hash) => missing.add(hash));
  }
  return { missing: [...missing], held: unique.length - missing.size };
}

async function sendMissing(work) {
  const { record, row } = work;
  const { missing, held } = await missingChunks(record);
  // Where each chunk first appears, and the bytes it covers (a repeated chunk is sent once).
  const firstIndex = new Map();
  const covers = new Map();
  record.hashes.forEach(function (hash, index) {
    firstIndex.set(hash, firstIndex.has(hash) ? firstIndex.get(hash) : index);
    covers.set(hash, (covers.get(hash) || 0) + chunkOf(record.file, index).size);
  });
  let done = record.size - missing.reduce((sum, hash) => sum + covers.get(hash), 0);
  work.storedBytes = done;
  for (const [number, hash] of missing.entries()) {
    const step = "Sending chunk " + (number + 1) + " of " + missing.length;
    const report = (sent) => row.progress("uploading", done + sent, step + ": "
      + formatBytes(done + sent) + " of " + formatBytes(record.size) + " stored…");
    goOn(work);
    report(0);
    await putChunk(hash, record.namespaceId, chunkOf(record.file, firstIndex.get(hash)), step,
      report);
    done += covers.get(hash);
    work.storedBytes = done;
    if (!record.stored.includes(hash)) {
      record.stored.push(hash);
    }
    await keep(work);
  }
  return { sent: missing.length, held };
}

async function upload(work) {
  const { record, row } = work;
  if (record.id !== undefined && !(await pendingExists(record.id))) {
    row.show("elsewhere", "Finished or removed in another tab of this browser.");
    return;
  }
  if (!record.hashes) {
    record.hashes = await hashChunks(work);
    await keep(work);
  }
  const { sent, held } = await sendMissing(work);
  goOn(work);
  if (!record.uploadKey) {
    record.uploadKey = newUploadKey(); // an upload kept before uploads had keys
    await keep(work);
  }
  row.progress("recording", record.size, "Recording the asset…");
  const asset = await sendJson("POST", "/shards/" + record.boothId + "/assets", {
    name: record.name,
    content_type: record.file.type || "application/octet-stream",
    namespace: String(record.namespaceId),
    chunks: record.hashes,
    upload_key: record.uploadKey,
  }, "Recording the asset");
  if (record.id !== undefined) {
    await pendingRemove(record.id);
  }
  row.done(asset, sent, held);
}

function failure(error, record) {
  if (error instanceof RequestRefused) {
    return error.message;
  }
  if (error && (error.name === "NotReadableError" || error.name === "NotFoundError")) {
    return "“" + record.name + "” could not be read any more (was it moved, changed or "
      + "deleted?). Remove it and choose the file again.";
  }
  return "The upload stopped on an unexpected error: " + (error && error.message) + ".";
}

async function run(work) {
  try {
    await upload(work);
  } catch (error) {
    if (!leaving && error !== REMOVED) {
      work.row.failed(failure(error, work.record), true, work.storedBytes);
    }
  }
}

// Two tabs of this page must not carry on the same upload (that would record it twice).
function runAlone(work) {
  if (!navigator.locks || work.record.id === undefined) {
    return run(work);
  }
  return navigator.locks.request("upload-" + work.record.id, { ifAvailable: true },
    function (lock) {
      if (lock === null) {
        work.row.show("elsewhere", "Carrying on in another tab of this browser.");
        return undefined;
      }
      return run(work);
    });
}

function schedule(work) {
  work.row.show("queued", "Waiting for the uploads before it…");
  queue = queue.then(() => runAlone(work));
}

function track(record) {
  // storedBytes: how much of the file the market is known to hold
  const work = { record, row: null, storedBytes: 0, removed: false };
  work.row = new UploadRow(record, {
    retry: () => schedule(work),
    remove: async function () {
      work.removed = true;
      if (record.id !== undefined) {
        await pendingRemove(record.id).catch(() => undefined);
      }
      work.row.drop();
    },
  });
  return work;
}

async function addFiles(files) {
  const option = target.selectedOptions[0];
  for (const file of files) {
    const record = {
      owner,
      file,
      name: file.name,
      size: file.size,
      namespaceId: Number(option.value),
      boothId: Number(option.dataset.booth),
      target: option.dataset.label,
      hashes: null,
      stored: [],
      uploadKey: newUploadKey(),
    };
    const work = track(record);
    if (file.size === 0) {
      work.row.failed("“" + file.name + "” is empty (or a folder): there is nothing to upload.",
        false, 0);
      continue;
    }
    try {
      record.id = await pendingAdd(record);
    } catch {
      work.row.tell("This browser could not keep the file for later, so this upload cannot "
        + "carry on after a reload.");
    }
    schedule(work);
  }
}

async function resumePending() {
  let records;
  try {
    records = await pendingOf(owner);
  } catch {
    storageNote.textContent = "This browser does not let the page keep files, so an upload "
      + "cannot carry on after a reload.";
    storageNote.hidden = false;
    return;
  }
  for (const record of records) {
    const work = track(record);
    work.row.tell(record.hashes
      ? "Carrying on: " + record.stored.length + " of " + new Set(record.hashes).size
        + " chunks were stored before the page was closed."
      : "Carrying on: the page was closed while this file was being hashed.");
    schedule(work);
  }
}

window.addEventListener("pagehide", function () {
  leaving = true;
});
// Coming back through the history cache, start afresh: the pending uploads carry on.
window.addEventListener("pageshow", function (event) {
  if (event.persisted) {
    window.location.reload();
  }
});
// A file dropped beside the drop zone must not make the browser leave the page to open it.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
dropzone.addEventListener("dragover", function (event) {
  event.preventDefault();
  dropzone.classList.add("over");
});
dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
dropzone.addEventListener("drop", function (event) {
  event.preventDefault();
  dropzone.classList.remove("over");
  addFiles([...event.dataTransfer.files]);
});
input.addEventListener("change", function () {
  const files = [...input.files];
  input.value = ""; // so that choosing the same file again is noticed
  addFiles(files);
});

resumePending();
