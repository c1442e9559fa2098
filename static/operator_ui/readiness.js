// Whether this web process can take visitors: its `/readyz` (docs/dashboard.md), asked every
// 2 s. While a service the market needs is down the panel names it, since joins are refused
// meanwhile; the line goes once the service answers again.

const POLL_MS = 2000;
const line = document.getElementById("readiness");

async function poll() {
  let text = "";
  try {
    const answer = await fetch("/readyz", { cache: "no-store", credentials: "same-origin" });
    const body = await answer.json();
    if (!body.ready) {
      const down = Object.keys(body.checks).filter((name) => body.checks[name] !== "ok");
      text = `Not ready: ${down.join(" and ")} not answering; joins are refused until it is back.`;
    }
  } catch (error) {
    text = "Not ready: this web process does not answer.";
  }
  line.textContent = text;
  line.hidden = !text;
  line.dataset.ready = text ? "no" : "yes";
}

poll();
window.setInterval(poll, POLL_MS);
