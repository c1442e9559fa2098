// "Who may read": for each namespace, list its readers, grant and revoke (readers API).

import { sendJson } from "./api.js";

// The field that names the reader, for the kinds that need one.
const NAMED = {
  user: { field: "username", placeholder: "username", missing: "Enter the user's username." },
  group: { field: "group", placeholder: "group name", missing: "Enter the group's name." },
};

// The request body that names an existing grant again, to revoke it.
function specOf(grant) {
  if (grant.kind === "user") {
    return { kind: "user", username: grant.label };
  }
  if (grant.kind === "group") {
    return { kind: "group", group: grant.label.replace(/^group /, "") };
  }
  return { kind: grant.kind };
}

function setUp(card) {
  const url = "/namespaces/" + card.dataset.namespace + "/readers";
  const ownVisitors = "booth:" + card.dataset.booth + "#visitor";
  const status = card.querySelector(".status");
  const list = card.querySelector(".reader-list");
  const form = card.querySelector("form");
  const error = card.querySelector(".error");

  function say(problem) {
    error.textContent = problem;
    error.hidden = !problem;
  }

  function render(readers) {
    status.textContent = readers.length
      ? ""
      : "Nobody else yet: only the namespace's writers may read it.";
    status.hidden = readers.length > 0;
    list.replaceChildren(...readers.map(function (grant) {
      const item = document.createElement("li");
      item.dataset.subject = grant.subject;
      const label = document.createElement("span");
      label.className = "reader";
      label.textContent = grant.subject === ownVisitors ? "visitors of this booth" : grant.label;
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.textContent = "Revoke";
      revoke.setAttribute("aria-label", "Revoke " + label.textContent);
      revoke.addEventListener("click", () => change("DELETE", specOf(grant), "Revoking"));
      item.append(label, revoke);
      return item;
    }));
  }

  async function refresh() {
    const answer = await sendJson("GET", url, undefined, "Loading who may read");
    render(answer.readers);
  }

  async function change(method, spec, what) {
    say("");
    for (const control of card.querySelectorAll("button, input, select")) {
      control.disabled = true;
    }
    try {
      await sendJson(method, url, spec, what + " read access");
      if (method === "POST") {
        form.elements.who.value = "";
      }
      await refresh();
    } catch (problem) {
      say(problem.message);
    } finally {
      for (const control of card.querySelectorAll("button, input, select")) {
        control.disabled = false;
      }
    }
  }

  function showNameField() {
    const named = NAMED[form.elements.kind.value];
    form.elements.who.hidden = !named;
    if (named) {
      form.elements.who.placeholder = named.placeholder;
      form.elements.who.setAttribute("aria-label", named.placeholder);
    }
  }

  form.elements.kind.addEventListener("change", showNameField);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const kind = form.elements.kind.value;
    const spec = { kind };
    const named = NAMED[kind];
    if (named) {
      const who = form.elements.who.value.trim();
      if (!who) {
        say(named.missing);
        return;
      }
      spec[named.field] = who;
    }
    change("POST", spec, "Granting");
  });
  showNameField();
  refresh().catch((problem) => say(problem.message));
}

document.querySelectorAll(".readers[data-namespace]").forEach(setUp);
