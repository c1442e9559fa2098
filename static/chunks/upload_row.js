// One file's line in the upload list: what it is, where it goes, how far it got.

import { formatBytes } from "./api.js";

const list = document.getElementById("uploads");
const empty = document.getElementById("uploads-empty");

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

export class UploadRow {
  constructor(record, actions) {
    this.item = element("li", "upload");
    this.item.dataset.name = record.name;
    this.size = record.size;
    const head = element("div", "upload-head");
    head.append(
      element("span", "file-name", record.name),
      element("span", "file-size", formatBytes(record.size)),
      element("span", "target", "to " + record.target),
    );
    this.bar = element("progress");
    this.bar.setAttribute("aria-label", "Stored of " + record.name);
    this.bar.max = Math.max(record.size, 1);
    this.bar.value = 0;
    this.status = element("p", "upload-status");
    this.status.setAttribute("role", "status");
    this.note = element("p", "note");
    this.note.hidden = true;
    this.error = element("p", "error");
    this.error.setAttribute("role", "alert");
    this.error.hidden = true;
    this.retry = element("button", "retry", "Retry");
    this.remove = element("button", "remove", "Remove");
    this.retry.type = this.remove.type = "button";
    this.retry.addEventListener("click", actions.retry);
    this.remove.addEventListener("click", actions.remove);
    const buttons = element("div", "upload-actions");
    buttons.append(this.retry, this.remove);
    this.item.append(head, this.bar, this.status, this.note, this.error, buttons);
    list.append(this.item);
    empty.hidden = true;
    this.show("queued", "Waiting for the uploads before it…");
  }

  show(state, text) {
    this.item.dataset.state = state;
    this.status.textContent = text;
    this.error.hidden = true;
    this.retry.hidden = true;
    this.remove.hidden = state === "done" || state === "elsewhere";
  }

  progress(state, bytes, text) {
    this.bar.value = bytes;
    this.show(state, text);
  }

  tell(text) {
    this.note.textContent = text;
    this.note.hidden = false;
  }

  failed(message, canRetry, stored) {
    this.bar.value = stored;
    this.show("failed", "Stopped with " + formatBytes(stored) + " of "
      + formatBytes(this.size) + " stored.");
    this.error.textContent = message;
    this.error.hidden = false;
    this.retry.hidden = !canRetry;
  }

  done(asset, sent, held) {
    this.bar.value = this.bar.max;
    const chunks = asset.chunks.length;
    this.show(
      "done",
      "Stored as asset " + asset.id + ", “" + asset.name + "”: " + chunks
        + (chunks === 1 ? " chunk, " : " chunks, ") + formatBytes(asset.size)
        + (asset.size < 1024 ? "" : " (" + asset.size.toLocaleString("en") + " bytes)") + ". "
        + sent + " sent, " + held + " already in the namespace.",
    );
    Object.assign(this.item.dataset, { asset: asset.id, sent, held });
  }

  drop() {
    this.item.remove();
    empty.hidden = list.children.length > 0;
  }
}
