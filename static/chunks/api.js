// Requests from the upload page to the chunk store, and what their failures mean to people.
// Every write sends the CSRF token from the csrftoken cookie: the store authenticates the
// page by its session, which (as in any DRF view) requires the token for writes.

export class RequestRefused extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function formatBytes(bytes) {
  const units = ["KiB", "MiB", "GiB", "TiB"];
  if (bytes < 1024) {
    return bytes + (bytes === 1 ? " byte" : " bytes");
  }
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return value.toFixed(1).replace(/\.0$/, "") + " " + units[unit];
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function signedOut(body) {
  const detail = (body && body.detail) || "";
  return (
    (body && body.error === "not_authenticated") ||
    /CSRF|credentials were not provided|sign in/i.test(detail)
  );
}

// `what` is the step that failed, as a phrase: "Sending chunk 2 of 4".
export function explain(what, status, body) {
  const detail = body && typeof body.detail === "string" ? body.detail : "";
  if (status === 0) {
    return what + " failed: the market could not be reached (network error). "
      + "Check your connection and try again.";
  }
  if (status === 401 || (status === 403 && signedOut(body))) {
    return what + " was refused: you are no longer signed in. "
      + "Sign in again, then come back to this page; the upload carries on.";
  }
  if (status === 413) {
    const most = body && body.max_bytes ? formatBytes(body.max_bytes) : "less";
    return what + " was refused: the market accepts chunks of at most " + most
      + ", and this page sends chunks of 1 MiB. Ask the market's operators to raise "
      + "CHUNK_MAX_BYTES.";
  }
  if (status === 403) {
    return what + " was refused: " + (detail || "you may not do this.");
  }
  if (status === 404) {
    return what + " failed: it is no longer there.";
  }
  if (status >= 500) {
    return what + " failed: the market had an internal error (" + status + "). "
      + "Try again later.";
  }
  return what + " was refused (" + status + ")" + (detail ? ": " + detail : ".");
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export async function sendJson(method, url, body, what) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new RequestRefused(explain(what, 0, null), 0);
  }
  const answer = parseJson(await response.text());
  if (!response.ok) {
    throw new RequestRefused(explain(what, response.status, answer), response.status);
  }
  return answer;
}

// PUT one chunk; `onProgress(bytesSent)` follows the body as it leaves the browser.
export function putChunk(hash, namespaceId, blob, what, onProgress) {
  return new Promise(function (resolve, reject) {
    const request = new XMLHttpRequest();
    request.open("PUT", "/chunks/" + hash + "?namespace=" + encodeURIComponent(namespaceId));
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.upload.addEventListener("progress", function (event) {
      onProgress(event.loaded);
    });
    request.addEventListener("load", function () {
      if (request.status === 200 || request.status === 201) {
        resolve();
        return;
      }
      const answer = parseJson(request.responseText);
      reject(new RequestRefused(explain(what, request.status, answer), request.status));
    });
    request.addEventListener("error", function () {
      reject(new RequestRefused(explain(what, 0, null), 0));
    });
    request.send(blob);
  });
}
