// The agl dashboard: plain browser JavaScript, no build step and no dependencies. Every piece of text
// from the server goes in through textContent (never innerHTML): rollout inputs are user data.

const POLL_MS = 2_000;
/** Schedules come from Temporal, not the store: their next run times move on by themselves. */
const SCHEDULES_EVERY_MS = 30_000;
const ROLLOUT_PAGE = 25;
const HISTORY_SHOWN = 10;
const SERIES_COLORS = ["#0f9d8a", "#d97706", "#8b5cf6", "#db2777", "#0891b2"];
const PHASE_COLORS = { start: "#c7ccd6", collect: "#3b6fe0", train: "#8b5cf6", search: "#0f9d8a", validate: "#d97706", deploy: "#1a7f37", finish: "#98a2b3" };

const state = {
  agent: null,
  agents: [],
  temporal: null,
  detail: null,
  rollouts: [],
  rolloutLimit: ROLLOUT_PAGE,
  expanded: new Set(),
  historyAll: false,
  schedules: null,
  schedulesAt: 0,
  stamp: null,
  labelMove: null,
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------- small helpers ----------

function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

function svg(tag, props = {}, ...children) {
  return build(document.createElementNS("http://www.w3.org/2000/svg", tag), props, children);
}

function build(element, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") element.setAttribute("class", value);
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const $ = (selector) => document.querySelector(selector);

function fill(target, ...children) {
  target.replaceChildren(...children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false));
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { accept: "application/json", ...(options.body ? { "content-type": "application/json" } : {}) } });
  if (response.status === 401) {
    location.assign("/login");
    throw new ApiError(401, "Signed out: this server needs its token.");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body?.error?.message ?? `The server answered ${response.status} ${response.statusText}.`);
  return body;
}

function fmt(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
}

function pct(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

function when(iso) {
  if (!iso) return "–";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  const ago = Math.abs(seconds);
  const text = ago < 45 ? `${ago} s` : ago < 5400 ? `${Math.round(ago / 60)} min` : ago < 129600 ? `${Math.round(ago / 3600)} h` : `${Math.round(ago / 86400)} d`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

function timeEl(iso) {
  return iso ? h("time", { datetime: iso, title: new Date(iso).toLocaleString() }, when(iso)) : "–";
}

function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

function badge(text, tone, title) {
  return h("span", { class: `badge ${tone ?? ""}`, title }, text);
}

function outcomeTone(outcome) {
  return { deployed: "good", kept: "neutral", skipped: "muted", failed: "bad", cancelled: "bad", running: "live" }[outcome] ?? "muted";
}

function table(headers, rows, options = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: `stack ${options.class ?? ""}` },
      h("thead", {}, h("tr", {}, headers.map((header) => h("th", { scope: "col" }, header)))),
      h("tbody", {}, rows),
    ),
  );
}

/** A table row whose cells carry their column name, which the phone layout shows beside each value. */
function row(headers, cells, props = {}) {
  return h("tr", props, cells.map((cell, index) => h("td", { "data-label": headers[index] }, cell)));
}

function empty(text) {
  return h("p", { class: "empty" }, text);
}

function showProblem(message) {
  const problem = $("#problem");
  problem.textContent = message ?? "";
  problem.hidden = !message;
}

function showNotice(message) {
  const notice = $("#notice");
  notice.textContent = message;
  notice.hidden = false;
  clearTimeout(showNotice.timer);
  showNotice.timer = setTimeout(() => (notice.hidden = true), 6_000);
}

function setLive(ok, detail) {
  const live = $("#live");
  live.className = `connection ${ok ? "ok" : "down"}`;
  live.textContent = ok ? `live · ${new Date().toLocaleTimeString()}` : "offline";
  live.title = detail ?? "The page asks the server for changes every 2 seconds.";
}

// ---------- loading ----------

async function refreshAll() {
  const [overview, detail] = await Promise.all([api("/v1/dashboard/agents"), api(`/v1/dashboard/agents/${encodeURIComponent(state.agent)}`)]);
  state.agents = overview.agents;
  state.temporal = overview.temporal;
  state.detail = detail;
  await refreshRollouts();
  renderAgents();
  renderCanary();
  renderCurve();
  renderCycles();
  renderVersions();
  renderHistory();
  renderFilters();
  await refreshDiff();
  await refreshSchedules();
}

async function refreshRollouts() {
  const filters = new FormData($("#rollout-filters"));
  const query = new URLSearchParams({ limit: String(state.rolloutLimit) });
  for (const [key, value] of filters) if (String(value).trim() !== "") query.set(key, String(value).trim());
  try {
    const answer = await api(`/v1/dashboard/agents/${encodeURIComponent(state.agent)}/rollouts?${query}`);
    state.rollouts = answer.rollouts;
    renderRollouts();
  } catch (error) {
    fill($("#rollouts .body"), h("p", { class: "error", role: "alert" }, error.message));
  }
}

async function refreshSchedules() {
  state.schedulesAt = Date.now();
  try {
    state.schedules = await api("/v1/dashboard/schedules");
    renderSchedules();
  } catch (error) {
    fill($("#schedules .body"), h("p", { class: "error", role: "alert" }, error.message));
  }
}

/** Redraws everything and remembers the change stamp it drew, so the next poll does not redraw it again. */
async function refreshNow() {
  const { stamp } = await api(`/v1/dashboard/pulse?agent=${encodeURIComponent(state.agent)}`);
  if (stamp !== state.stamp) {
    await refreshAll();
    state.stamp = stamp;
    return true;
  }
  return false;
}

async function tick() {
  try {
    if (!(await refreshNow())) {
      if (Date.now() - state.schedulesAt > SCHEDULES_EVERY_MS) await refreshSchedules();
      else refreshRelativeTimes();
    }
    showProblem(null);
    setLive(true);
  } catch (error) {
    setLive(false, error.message);
    showProblem(`Could not refresh: ${error.message}`);
  }
  setTimeout(tick, POLL_MS);
}

function refreshRelativeTimes() {
  for (const element of document.querySelectorAll("time[datetime]")) element.textContent = when(element.getAttribute("datetime"));
}

// ---------- agents ----------

function renderAgents() {
  const select = $("#agent-select");
  fill(select, state.agents.map((agent) => h("option", { value: agent.id, selected: agent.id === state.agent }, agent.id)));
  fill(
    $("#agents .body"),
    h(
      "div",
      { class: "tiles" },
      state.agents.map((agent) => {
        const production = agent.production;
        const cycle = agent.latestCycle;
        return h(
          "article",
          { class: `tile ${agent.id === state.agent ? "selected" : ""}`, "data-agent": agent.id },
          h("h3", {}, agent.id),
          h("p", { class: "muted" }, agent.description),
          production
            ? h(
                "dl",
                { class: "facts" },
                h("dt", {}, "production"),
                h("dd", {}, h("strong", { class: "production-version" }, `v${production.version}`)),
                h("dt", {}, production.kind === "rolled_back" ? "rolled back" : "deployed"),
                h("dd", {}, timeEl(production.deployedAt), " by ", h("code", {}, production.deployedBy)),
                production.reason ? [h("dt", {}, "reason"), h("dd", {}, production.reason)] : null,
              )
            : h("p", { class: "muted" }, "No production version yet: the first cycle publishes one."),
          cycle
            ? h("p", { class: "latest" }, "Latest cycle ", badge(cycle.outcome ?? cycle.phase, outcomeTone(cycle.outcome ?? "running")), " ", timeEl(cycle.finishedAt ?? cycle.startedAt))
            : null,
        );
      }),
    ),
  );
}

// ---------- canary ----------

const CANARY_TONES = { running: "live", promoted: "good", rolled_back: "warn" };

/** The latest canary: both arms with their 95 % intervals (live while it runs), the always-valid difference, and the guard's state. */
function renderCanary() {
  const canary = state.detail.canary;
  const section = $("#canary");
  section.hidden = !canary;
  if (!canary) return fill($("#canary .body"));
  const look = canary.live ?? (canary.state.arms ? canary.state : null);
  const headers = ["Arm", "Version", "Rollouts", "Rewarded", "Reward (95 % interval)", "", "Failed", "p90 latency"];
  const arms = look ? Object.entries(look.arms) : [];
  const bounds = arms.flatMap(([, arm]) => [arm.reward.low ?? arm.reward.mean, arm.reward.high ?? arm.reward.mean]);
  const scale = { low: Math.min(-1, ...bounds), high: Math.max(1, ...bounds) };
  // A bound a hair under zero (no spread at all) reads 0, not -0.000.
  const shown = (value) => fmt(Math.abs(value) < 5e-4 ? 0 : value);
  const difference = (name, interval) => (interval ? h("li", { "data-difference": name }, `${name}: ${shown(interval.difference)} [${shown(interval.low)}, ${shown(interval.high)}]`) : null);
  fill(
    $("#canary .body"),
    h(
      "p",
      { class: "canary-head", "data-canary": canary.id },
      badge(canary.status.replace("_", " "), CANARY_TONES[canary.status]),
      " ",
      h("strong", {}, `v${canary.canaryVersion}`),
      ` serves ${canary.weight}% of keyed traffic against production `,
      h("strong", {}, `v${canary.baselineVersion}`),
      " · started ",
      timeEl(canary.startedAt),
      " by ",
      h("code", {}, canary.startedBy),
    ),
    canary.status !== "running" ? h("p", { class: "decision", "data-decision": canary.status }, `${canary.status === "promoted" ? "Promoted" : "Rolled back"} by `, h("code", {}, canary.decidedBy), ": ", canary.decisionReason) : null,
    look
      ? table(
          headers,
          arms.map(([name, arm]) =>
            row(
              headers,
              [
                h("strong", {}, name),
                `v${arm.version}`,
                String(arm.rollouts),
                String(arm.rewarded),
                arm.reward.low === null ? fmt(arm.reward.mean) : `${fmt(arm.reward.mean)} [${fmt(arm.reward.low)}, ${fmt(arm.reward.high)}]`,
                intervalBar(arm.reward, scale, name),
                pct(arm.failureRate),
                arm.p90LatencyMs === null ? "–" : `${Math.round(arm.p90LatencyMs)} ms`,
              ],
              { "data-arm": name },
            ),
          ),
          { class: "arms" },
        )
      : empty("No rollouts on either arm yet."),
    look && (look.reward || look.failureRate)
      ? h(
          "div",
          { class: "differences" },
          h("p", { class: "small muted" }, `Canary − production, always-valid intervals (${look.test}, alpha ${look.alpha} over all looks):`),
          h("ul", {}, difference("reward", look.reward), difference("failure rate", look.failureRate), difference("share slower than production's p90", look.slowShare)),
        )
      : null,
    h(
      "p",
      { class: "guard", "data-guard": canary.state.decision ?? "waiting" },
      h("strong", {}, "Guard: "),
      canary.state.look ? `look ${canary.state.look}, ${canary.state.decision}. ${canary.state.reason}` : canary.status === "running" ? "waiting for its first look." : "ended before its first look.",
    ),
  );
}

/** One arm's mean and 95 % interval as a bar on the reward scale. */
function intervalBar(reward, scale, name) {
  const width = 160;
  const x = (value) => ((value - scale.low) / (scale.high - scale.low)) * width;
  return svg(
    "svg",
    { class: "interval", viewBox: `0 0 ${width} 14`, width, height: 14, role: "img", "aria-label": `${name} reward interval` },
    svg("line", { x1: x(0), x2: x(0), y1: 0, y2: 14, class: "zero" }),
    reward.low === null ? null : svg("rect", { x: x(reward.low), y: 4, width: Math.max(1, x(reward.high) - x(reward.low)), height: 6, class: `band ${name}` }),
    svg("circle", { cx: x(reward.mean), cy: 7, r: 3, class: `mean ${name}` }),
  );
}

// ---------- learning curve ----------

function renderCurve() {
  const { analysis, cycles } = state.detail;
  const fields = [...new Set([...analysis.versions.flatMap((v) => Object.keys(v.fieldAccuracy)), ...cycles.flatMap((c) => Object.keys(scoreAfter(c)?.fieldAccuracy ?? {}))])].sort();
  const colorOf = (field) => SERIES_COLORS[fields.indexOf(field) % SERIES_COLORS.length];

  const versions = analysis.versions.filter((v) => v.version !== null);
  drawChart($("#chart-versions .plot"), {
    name: "versions",
    xLabels: versions.map((v) => `v${v.version}`),
    empty: "No rollouts of a published version yet.",
    series: [
      {
        id: "reward",
        color: "#3056d3",
        band: true,
        points: versions.map((v, i) =>
          v.reward && { x: i, y: v.reward.mean, low: v.reward.low, high: v.reward.high, title: `v${v.version} · mean reward ${fmt(v.reward.mean)}${v.reward.low !== null ? ` (95% CI ${fmt(v.reward.low)}–${fmt(v.reward.high)})` : ""} · ${v.reward.n} scored of ${v.rollouts} rollouts` },
        ),
      },
      ...fields.map((field) => ({
        id: `field-${field}`,
        color: colorOf(field),
        dashed: true,
        points: versions.map((v, i) => v.fieldAccuracy[field] && { x: i, y: v.fieldAccuracy[field].accuracy, title: `v${v.version} · ${field} accuracy ${pct(v.fieldAccuracy[field].accuracy)} (${v.fieldAccuracy[field].right}/${v.fieldAccuracy[field].total})` }),
      })),
    ],
  });

  const scored = cycles.filter((cycle) => scoreAfter(cycle)).sort((a, b) => Date.parse(a.finishedAt ?? a.startedAt) - Date.parse(b.finishedAt ?? b.startedAt));
  drawChart($("#chart-cycles .plot"), {
    name: "cycles",
    xLabels: dateLabels(scored.map((cycle) => cycle.finishedAt ?? cycle.startedAt)),
    empty: "No finished cycle with scores yet.",
    series: [
      {
        id: "baseline",
        color: "#98a2b3",
        hollow: true,
        points: scored.map((cycle, i) => cycle.result.baseline && { x: i, y: cycle.result.baseline.meanReward, title: `${cycle.id} · baseline v${cycle.incumbentVersion ?? "?"}: ${fmt(cycle.result.baseline.meanReward)}` }),
      },
      {
        id: "reward",
        color: "#3056d3",
        points: scored.map((cycle, i) => {
          const score = scoreAfter(cycle);
          return { x: i, y: score.meanReward, title: `${cycle.id} · ${cycle.outcome === "deployed" ? `deployed v${cycle.deployedVersion}` : `kept v${cycle.incumbentVersion ?? "?"}`}: ${fmt(score.meanReward)} on ${score.rollouts} validation runs` };
        }),
      },
      {
        id: "test",
        color: "#12805c",
        band: true,
        points: scored.map((cycle, i) => {
          const test = cycle.result.test;
          return test && { x: i, y: test.deployed.mean, low: test.deployed.low, high: test.deployed.high, title: `${cycle.id} · v${cycle.deployedVersion} on the test split: ${fmt(test.deployed.mean)} (95% CI ${fmt(test.deployed.low)}–${fmt(test.deployed.high)}), v${cycle.incumbentVersion} ${fmt(test.incumbent.mean)}, difference ${fmt(test.difference.mean)} over ${test.tasks} tasks` };
        }),
      },
      ...fields.map((field) => ({
        id: `field-${field}`,
        color: colorOf(field),
        dashed: true,
        points: scored.map((cycle, i) => {
          const accuracy = scoreAfter(cycle).fieldAccuracy?.[field];
          return accuracy !== undefined && { x: i, y: accuracy, title: `${cycle.id} · ${field} accuracy ${pct(accuracy)}` };
        }),
      })),
    ],
  });

  fill(
    $("#curve-legend"),
    h("li", {}, h("span", { class: "swatch line band" }), "mean reward (shaded: 95% confidence band)"),
    h("li", {}, h("span", { class: "swatch dot hollow" }), "baseline: production before the cycle"),
    h("li", {}, h("span", { class: "swatch line band test" }), "deployed version on the test split, which nobody chose with: the number to believe"),
    fields.map((field) => {
      const swatch = h("span", { class: "swatch line dashed" });
      swatch.style.borderColor = colorOf(field);
      return h("li", {}, swatch, `${field} accuracy`);
    }),
  );
}

/** What production scored on the validation split once the cycle was over: the deployed candidate, else the incumbent it kept. */
function scoreAfter(cycle) {
  const result = cycle.result ?? {};
  return cycle.outcome === "deployed" ? result.best ?? result.baseline : result.baseline;
}

/** "Nov 22" per point; with the time of day too when two points fall on one day. */
function dateLabels(isoTimes) {
  const day = (iso) => new Date(iso).toLocaleDateString(undefined, { month: "short", day: "numeric" });
  const days = isoTimes.map(day);
  if (new Set(days).size === days.length) return days;
  return isoTimes.map((iso, i) => `${days[i]} ${new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })}`);
}

/** A line chart drawn at the box's real width, so its text stays readable on a phone. */
function drawChart(box, chart) {
  box.dataset.chart = chart.name;
  box.lastChart = chart;
  const series = chart.series.map((s) => ({ ...s, points: s.points.filter(Boolean) }));
  if (chart.xLabels.length === 0 || series.every((s) => s.points.length === 0)) return fill(box, empty(chart.empty));
  const width = Math.max(260, Math.floor(box.clientWidth || 600));
  const height = 240;
  const margin = { top: 14, right: 18, bottom: 36, left: 44 };
  const innerWidth = width - margin.left - margin.right;
  const innerHeight = height - margin.top - margin.bottom;
  // Rewards and accuracies lie in [-1, 1]; a confidence band may reach past that and is cut at the edge.
  const yMin = Math.max(-1, Math.min(0, Math.floor(Math.min(...series.flatMap((s) => s.points.map((p) => p.y))) * 4) / 4));
  const yMax = 1;
  const count = chart.xLabels.length;
  const x = (i) => margin.left + (count === 1 ? innerWidth / 2 : (i * innerWidth) / (count - 1));
  const y = (v) => margin.top + innerHeight - ((Math.min(yMax, Math.max(yMin, v)) - yMin) / (yMax - yMin)) * innerHeight;

  const grid = [];
  for (let tick = yMin; tick <= yMax + 1e-9; tick += 0.25) {
    grid.push(svg("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: y(tick), y2: y(tick) }));
    grid.push(svg("text", { class: "tick", x: margin.left - 8, y: y(tick) + 4, "text-anchor": "end" }, tick.toFixed(2)));
  }
  const labelWidth = Math.max(...chart.xLabels.map((label) => label.length)) * 6.5 + 16;
  const every = Math.max(1, Math.ceil(count / Math.max(1, Math.floor(innerWidth / labelWidth))));
  const labels = chart.xLabels.map((label, i) =>
    i % every === 0 || i === count - 1 ? svg("text", { class: "tick", x: x(i), y: height - 12, "text-anchor": count === 1 ? "middle" : i === 0 ? "start" : i === count - 1 ? "end" : "middle" }, label) : null,
  );
  const drawn = series.map((s) => {
    const points = s.points;
    const path = points.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(" ");
    const banded = s.band ? points.filter((p) => p.low !== null && p.low !== undefined) : [];
    const band =
      banded.length > 0
        ? svg("path", {
            class: "band",
            fill: s.color,
            d: banded.length === 1 ? `M${x(banded[0].x) - 6},${y(banded[0].high)} L${x(banded[0].x) + 6},${y(banded[0].high)} L${x(banded[0].x) + 6},${y(banded[0].low)} L${x(banded[0].x) - 6},${y(banded[0].low)} Z` : `${banded.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.x).toFixed(1)},${y(p.high).toFixed(1)}`).join(" ")} ${[...banded].reverse().map((p) => `L${x(p.x).toFixed(1)},${y(p.low).toFixed(1)}`).join(" ")} Z`,
          })
        : null;
    return svg(
      "g",
      { class: `series ${s.dashed ? "dashed" : ""}`, "data-series": s.id },
      band,
      points.length > 1 ? svg("path", { class: "line", d: path, stroke: s.color }) : null,
      points.map((p) => svg("circle", { class: `point ${s.hollow ? "hollow" : ""}`, "data-series": s.id, cx: x(p.x), cy: y(p.y), r: s.dashed ? 3 : 4.5, stroke: s.color, fill: s.hollow ? "#fff" : s.color }, svg("title", {}, p.title))),
    );
  });
  fill(
    box,
    svg(
      "svg",
      { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${chart.name}: mean reward and accuracy for ${count} points` },
      grid,
      labels,
      drawn.filter((g) => g.dataset.series !== "reward"),
      drawn.filter((g) => g.dataset.series === "reward"),
    ),
  );
}

// ---------- cycles ----------

function renderCycles() {
  const cycles = state.detail.cycles;
  if (cycles.length === 0) return fill($("#cycles .body"), empty("No cycles yet. Start one with: agl cycle start --agent " + state.agent + " --dataset …"));
  const headers = ["Started", "Trigger", "Outcome", "Phases", "Baseline → candidate", "Run"];
  fill(
    $("#cycles .body"),
    table(
      headers,
      cycles.map((cycle) => {
        const baseline = cycle.result?.baseline;
        const best = cycle.result?.best;
        const delta = baseline && best ? best.meanReward - baseline.meanReward : null;
        const running = cycle.finishedAt === null;
        const progress = cycle.progress?.progress;
        return row(
          headers,
          [
            h("div", {}, timeEl(cycle.startedAt), h("div", { class: "mono small cycle-id" }, cycle.id)),
            badge(cycle.trigger.startsWith("schedule:") ? `schedule · ${cycle.trigger.slice(9)}` : cycle.trigger, "muted", cycle.trigger),
            h(
              "div",
              {},
              running
                ? badge(`${cycle.phase}${progress?.total ? ` ${progress.done}/${progress.total}` : ""}`, "live")
                : badge(cycle.outcome === "deployed" ? `deployed v${cycle.deployedVersion}` : cycle.outcome === "kept" ? `kept v${cycle.incumbentVersion}` : cycle.outcome ?? "unknown", outcomeTone(cycle.outcome)),
              cycle.outcomeDetail ? h("div", { class: "small muted detail" }, cycle.outcomeDetail) : null,
            ),
            timeline(cycle),
            baseline || best
              ? h(
                  "div",
                  { class: "scores" },
                  h("span", { title: "incumbent on the validation split" }, fmt(baseline?.meanReward)),
                  " → ",
                  h("span", { title: best ? `candidate ${best.contender}` : "" }, fmt(best?.meanReward)),
                  delta !== null ? h("span", { class: `delta ${delta > 0 ? "up" : delta < 0 ? "down" : ""}` }, `${delta >= 0 ? "+" : ""}${fmt(delta)}`) : null,
                  cycle.result?.test
                    ? h(
                        "div",
                        { class: "small test-score", title: "measured after the decision on the test split, which neither the optimizer nor the gate saw" },
                        `test: ${fmt(cycle.result.test.incumbent.mean)} → ${fmt(cycle.result.test.deployed.mean)} (Δ ${fmt(cycle.result.test.difference.mean)}, 95% CI ${fmt(cycle.result.test.difference.low)}–${fmt(cycle.result.test.difference.high)})`,
                      )
                    : null,
                )
              : "–",
            cycle.runUrl ? h("a", { href: cycle.runUrl, target: "_blank", rel: "noopener", class: "run-link" }, "Temporal ↗") : h("span", { class: "muted small" }, "no UI"),
          ],
          { "data-cycle": cycle.id },
        );
      }),
      { class: "cycles" },
    ),
  );
}

/** Phase spans come from when the cycle stored its rollouts; the gaps between them are the steps that run no agent. */
function timeline(cycle) {
  const start = Date.parse(cycle.startedAt);
  const end = cycle.finishedAt ? Date.parse(cycle.finishedAt) : Date.now();
  const segments = [];
  let cursor = start;
  for (const span of cycle.phases) {
    const from = Math.max(cursor, Date.parse(span.firstAt));
    const to = Math.max(from, Date.parse(span.lastAt));
    if (from > cursor) segments.push({ name: segments.length === 0 ? "start" : "train", from: cursor, to: from });
    segments.push({ name: span.phase, from, to, detail: `${span.rollouts} runs` });
    cursor = to;
  }
  if (end > cursor || segments.length === 0) segments.push({ name: cycle.finishedAt ? (cycle.outcome === "deployed" ? "deploy" : "finish") : cycle.phase, from: cursor, to: Math.max(end, cursor) });
  const total = Math.max(1, end - start);
  const bar = h("div", { class: "timeline", role: "img", "aria-label": segments.map((s) => s.name).join(", ") });
  for (const segment of segments) {
    const piece = h("span", { class: "segment", title: `${segment.name}${segment.detail ? ` · ${segment.detail}` : ""} · ${duration(segment.to - segment.from)}` });
    piece.style.flexGrow = String(Math.max(0.02, (segment.to - segment.from) / total));
    piece.style.background = PHASE_COLORS[segment.name] ?? PHASE_COLORS.finish;
    bar.append(piece);
  }
  return h("div", { class: "phases" }, bar, h("div", { class: "small muted" }, segments.filter((s) => s.name !== "start").map((s) => s.name).join(" → "), ` · ${duration(end - start)}`));
}

// ---------- versions, labels, audit trail ----------

function productionVersion() {
  return state.detail.versions.find((version) => version.labels.includes("production"))?.version ?? null;
}

function renderVersions() {
  const versions = [...state.detail.versions].reverse();
  const body = $("#versions .body");
  if (versions.length === 0) return fill(body, empty("No versions yet: the first cycle publishes the agent's seed prompt."));
  const stats = new Map(state.detail.analysis.versions.map((v) => [v.version, v]));
  const production = productionVersion();
  const headers = ["Version", "Labels", "Created", "Mean reward", ""];
  fill(
    body,
    table(
      headers,
      versions.map((version) => {
        const reward = stats.get(version.version)?.reward;
        const action =
          production === null || version.version === production
            ? null
            : version.version < production
              ? h("button", { type: "button", class: "small secondary", "data-action": "rollback", onclick: () => openLabelDialog("rollback", version.version) }, "Roll back here")
              : h("button", { type: "button", class: "small secondary", "data-action": "promote", onclick: () => openLabelDialog("promote", version.version) }, "Promote");
        return row(
          headers,
          [
            h("strong", {}, `v${version.version}`),
            h("span", { class: "labels" }, version.labels.length ? version.labels.map((label) => badge(label, label === "production" ? "good" : "neutral")) : h("span", { class: "muted" }, "–")),
            h("div", {}, timeEl(version.createdAt), h("div", { class: "small muted" }, version.createdBy), version.note ? h("div", { class: "small" }, version.note) : null),
            reward
              ? h("span", { title: reward.low !== null ? `95% CI ${fmt(reward.low)}–${fmt(reward.high)}` : "" }, fmt(reward.mean), h("span", { class: "small muted" }, ` n=${reward.n}`))
              : deployScore(version),
            action,
          ],
          { "data-version": version.version },
        );
      }),
    ),
    h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "move-label", onclick: () => openLabelDialog("promote", production) }, "Move a label…")),
  );
}

/** A version no rollout has run yet still has the validation score that got it deployed, as a candidate. */
function deployScore(version) {
  const validation = version.metrics?.validation;
  if (typeof validation?.meanReward !== "number") return "–";
  return h("span", { class: "deploy-score", title: `candidate ${validation.contender ?? ""} on the validation split, when ${version.createdBy} deployed it` }, fmt(validation.meanReward), h("span", { class: "small muted" }, " at deploy"));
}

function renderHistory() {
  const all = state.detail.history;
  if (all.length === 0) return fill($("#history .body"), empty("Nothing recorded yet."));
  const events = state.historyAll ? all : all.slice(0, HISTORY_SHOWN);
  const headers = ["When", "What", "Change", "By", "Reason"];
  const kinds = {
    published: ["published", "neutral"],
    labelled: ["labelled", "good"],
    rolled_back: ["rolled back", "warn"],
    canary_started: ["canary started", "live"],
    canary_promoted: ["canary promoted", "good"],
    canary_rolled_back: ["canary rolled back", "warn"],
  };
  const versionText = (version) => (version === null ? "–" : `v${version}`);
  fill(
    $("#history .body"),
    table(
      headers,
      events.map((event) =>
        row(
          headers,
          [
            timeEl(event.createdAt),
            badge(...(kinds[event.kind] ?? [event.kind, "muted"])),
            event.label ? [h("code", {}, event.label), event.fromVersion === null ? ` → ${versionText(event.toVersion)}` : ` v${event.fromVersion} → ${versionText(event.toVersion)}`] : `v${event.toVersion}${event.fromVersion ? ` (from v${event.fromVersion})` : ""}`,
            h("code", { class: "small" }, event.actor),
            event.reason ?? h("span", { class: "muted" }, "–"),
          ],
          { "data-event": event.id },
        ),
      ),
      { class: "history" },
    ),
    all.length > HISTORY_SHOWN
      ? h(
          "div",
          { class: "actions" },
          h("span", { class: "muted small" }, state.historyAll ? `All ${all.length} recorded events.` : `Newest ${HISTORY_SHOWN} of ${all.length}.`),
          h("button", { type: "button", class: "secondary small", onclick: () => ((state.historyAll = !state.historyAll), renderHistory()) }, state.historyAll ? "Show fewer" : "Show all"),
        )
      : null,
  );
}

function openLabelDialog(kind, version) {
  const production = productionVersion();
  const form = $("#label-form");
  state.labelMove = { kind, expectedVersion: production };
  form.label.value = "production";
  form.label.readOnly = kind === "rollback";
  form.version.value = version ?? "";
  form.reason.value = "";
  $("#label-dialog-title").textContent = kind === "rollback" ? "Roll back production" : "Promote a version";
  $("#label-explain").textContent =
    kind === "rollback"
      ? `production points at v${production}. Rolling back moves it to an earlier version at once; agents pick it up on their next fetch.`
      : `Move a label to a version. production points at v${production}; if someone moves it before you confirm, nothing changes and you are told.`;
  $("#label-submit").textContent = kind === "rollback" ? "Roll back" : "Move label";
  $("#label-error").hidden = true;
  $("#label-dialog").showModal();
  form.reason.focus();
}

async function submitLabelMove(event) {
  event.preventDefault();
  const form = $("#label-form");
  if (!form.reportValidity()) return;
  const { kind } = state.labelMove;
  const label = form.label.value.trim();
  const version = Number(form.version.value);
  const labelNow = state.detail.versions.find((v) => v.labels.includes(label))?.version ?? null;
  const expectedVersion = label === "production" ? state.labelMove.expectedVersion : labelNow;
  const body = { version, reason: form.reason.value.trim(), actor: "dashboard", expectedVersion, ...(kind === "rollback" ? { rollback: true } : {}) };
  const submit = $("#label-submit");
  submit.disabled = true;
  try {
    const moved = await api(`/v1/resources/${encodeURIComponent(state.detail.resource)}/labels/${encodeURIComponent(label)}`, { method: "POST", body: JSON.stringify(body) });
    $("#label-dialog").close();
    showNotice(`${moved.event.label} now points at v${moved.event.toVersion} (${moved.event.kind === "rolled_back" ? "rolled back" : "moved"} from v${moved.event.fromVersion ?? "–"}).`);
    state.stamp = null;
    await refreshNow();
  } catch (error) {
    const message = $("#label-error");
    message.textContent = error.message;
    message.hidden = false;
  } finally {
    submit.disabled = false;
  }
}

// ---------- diff ----------

async function refreshDiff() {
  const versions = state.detail.versions;
  const from = $("#diff-from");
  const to = $("#diff-to");
  const numbers = versions.map((v) => v.version);
  const keep = (select, fallback) => (numbers.includes(Number(select.value)) ? Number(select.value) : fallback);
  const latest = numbers.at(-1);
  const toValue = keep(to, latest);
  const fromValue = keep(from, versions.find((v) => v.version === toValue)?.parentVersion ?? numbers.at(-2) ?? latest);
  for (const [select, value] of [
    [from, fromValue],
    [to, toValue],
  ]) {
    fill(select, [...versions].reverse().map((v) => h("option", { value: v.version, selected: v.version === value }, `v${v.version}${v.labels.length ? ` (${v.labels.join(", ")})` : ""}`)));
  }
  const body = $("#compare .body");
  if (numbers.length < 2) return fill(body, empty("Two versions are needed to compare."));
  try {
    const diff = await api(`/v1/resources/${encodeURIComponent(state.detail.resource)}/diff?from=${fromValue}&to=${toValue}`);
    renderDiff(diff);
  } catch (error) {
    fill(body, h("p", { class: "error", role: "alert" }, error.message));
  }
}

function renderDiff(diff) {
  const showUnchanged = $("#diff-unchanged").checked;
  const components = diff.components.filter((component) => showUnchanged || component.change !== "unchanged");
  const unchanged = diff.components.length - components.length;
  fill(
    $("#compare .body"),
    diff.from === diff.to ? empty("Same version on both sides.") : null,
    components.map((component) =>
      h(
        "div",
        { class: "component", "data-component": component.component },
        h("h3", {}, h("code", {}, component.component), " ", badge(component.change, { added: "good", removed: "bad", modified: "warn", unchanged: "muted" }[component.change])),
        component.change === "unchanged" ? null : sideBySide(component.unified, diff.from, diff.to),
      ),
    ),
    unchanged > 0 && !showUnchanged ? h("p", { class: "muted small" }, `${unchanged} unchanged component${unchanged === 1 ? "" : "s"} hidden.`) : null,
  );
}

/** Turns the server's unified diff into rows of (old line, new line): removed and added lines side by side. */
function sideBySide(unified, from, to) {
  const rows = [];
  let oldLine = 0;
  let newLine = 0;
  let removed = [];
  let added = [];
  const flush = () => {
    for (let i = 0; i < Math.max(removed.length, added.length); i++) rows.push([removed[i] ?? null, added[i] ?? null]);
    removed = [];
    added = [];
  };
  for (const line of unified.split("\n")) {
    const hunk = /^@@ -(\d+),\d+ \+(\d+),\d+ @@/.exec(line);
    if (hunk) {
      flush();
      oldLine = Number(hunk[1]);
      newLine = Number(hunk[2]);
      if (rows.length > 0 || oldLine > 1 || newLine > 1) rows.push("gap");
    } else if (line.startsWith("-")) removed.push({ n: oldLine++, text: line.slice(1), kind: "removed" });
    else if (line.startsWith("+")) added.push({ n: newLine++, text: line.slice(1), kind: "added" });
    else {
      flush();
      rows.push([
        { n: oldLine++, text: line.slice(1), kind: "same" },
        { n: newLine++, text: line.slice(1), kind: "same" },
      ]);
    }
  }
  flush();
  const cell = (line) => (line ? [h("td", { class: `n ${line.kind}` }, line.n), h("td", { class: `text ${line.kind}` }, line.text)] : [h("td", { class: "n none" }), h("td", { class: "text none" })]);
  return h(
    "div",
    { class: "diff-wrap" },
    h(
      "table",
      { class: "diff" },
      h("colgroup", {}, h("col", { class: "n" }), h("col"), h("col", { class: "n" }), h("col")),
      h("thead", {}, h("tr", {}, h("th", { colspan: 2 }, `v${from}`), h("th", { colspan: 2 }, `v${to}`))),
      h("tbody", {}, rows.map((pair) => (pair === "gap" ? h("tr", { class: "gap" }, h("td", { colspan: 4 }, "⋯")) : h("tr", {}, cell(pair[0]), cell(pair[1]))))),
    ),
  );
}

// ---------- rollouts ----------

function renderFilters() {
  const form = $("#rollout-filters");
  const keepOptions = (select, values, label) => {
    const current = select.value;
    fill(select, h("option", { value: "" }, select.options[0]?.textContent ?? "all"), values.map((value) => h("option", { value, selected: String(value) === current }, label(value))));
  };
  keepOptions(form.version, state.detail.versions.map((v) => v.version).reverse(), (v) => `v${v}`);
  const scorers = [...new Set(state.detail.analysis.versions.flatMap((v) => Object.keys(v.rewardByScorer)))].sort();
  keepOptions(form.scorer, scorers, (s) => s);
}

function renderRollouts() {
  const body = $("#rollouts .body");
  if (state.rollouts.length === 0) return fill(body, empty("No rollouts match."));
  const headers = ["When", "Version", "Source", "Status", "Reward", "Latency", "Tokens"];
  const rows = state.rollouts.flatMap((rollout) => {
    const rewards = rollout.rewards;
    const mean = rewards.length ? rewards.reduce((sum, r) => sum + r.value, 0) / rewards.length : null;
    const open = state.expanded.has(rollout.id);
    const toggle = () => {
      if (state.expanded.has(rollout.id)) state.expanded.delete(rollout.id);
      else state.expanded.add(rollout.id);
      renderRollouts();
    };
    const summary = row(
      headers,
      [
        h("button", { type: "button", class: "link", "aria-expanded": String(open), onclick: toggle }, open ? "▾ " : "▸ ", timeEl(rollout.createdAt)),
        rollout.resourceVersion !== null ? `v${rollout.resourceVersion}` : rollout.candidateId ? h("span", { title: "an unpublished candidate of a cycle" }, `cand. ${rollout.candidateId}`) : "–",
        h("span", {}, rollout.source === "otlp" ? "OTLP" : "queue", rollout.phase ? h("span", { class: "small muted" }, ` · ${rollout.phase}`) : null),
        badge(rollout.status, rollout.status === "succeeded" ? "good" : "bad"),
        mean === null ? h("span", { class: "muted" }, "–") : h("span", { class: `reward ${mean >= 0.75 ? "hi" : mean <= 0.25 ? "lo" : ""}` }, fmt(mean, 2)),
        `${rollout.latencyMs} ms`,
        rollout.inputTokens !== null || rollout.outputTokens !== null ? `${rollout.inputTokens ?? "?"} + ${rollout.outputTokens ?? "?"}` : "–",
      ],
      { class: `rollout ${open ? "open" : ""}`, "data-rollout": rollout.id },
    );
    return open ? [summary, h("tr", { class: "rollout-detail" }, h("td", { colspan: headers.length }, rolloutDetail(rollout)))] : [summary];
  });
  fill(
    body,
    table(headers, rows, { class: "rollouts" }),
    h(
      "div",
      { class: "actions" },
      h("span", { class: "muted small" }, `${state.rollouts.length} newest shown.`),
      state.rollouts.length >= state.rolloutLimit
        ? h("button", { type: "button", class: "secondary small", onclick: () => ((state.rolloutLimit += ROLLOUT_PAGE), refreshRollouts()) }, "Show more")
        : null,
    ),
  );
}

function rolloutDetail(rollout) {
  return h(
    "div",
    { class: "detail-grid" },
    h("div", {}, h("h4", {}, "Input"), h("pre", {}, JSON.stringify(rollout.input, null, 2))),
    h("div", {}, h("h4", {}, rollout.status === "failed" ? "Error" : "Output"), h("pre", { class: rollout.status === "failed" ? "error" : "" }, rollout.status === "failed" ? rollout.error ?? "failed" : JSON.stringify(rollout.output, null, 2))),
    h(
      "div",
      { class: "rewards" },
      h("h4", {}, "Rewards"),
      rollout.rewards.length === 0
        ? h("p", { class: "muted" }, "Not scored yet.")
        : h("ul", {}, rollout.rewards.map((reward) => h("li", {}, h("code", {}, reward.scorer), " ", h("strong", {}, fmt(reward.value, 2)), h("div", { class: "reason" }, reward.reason)))),
      h(
        "p",
        { class: "small muted ids" },
        `id ${rollout.id}`,
        rollout.cycleId ? ` · cycle ${rollout.cycleId}` : "",
        rollout.taskId ? ` · task ${rollout.taskId}` : "",
        rollout.model ? ` · model ${rollout.model}` : "",
        rollout.traceId ? ` · trace ${rollout.traceId}` : "",
      ),
    ),
  );
}

// ---------- schedules ----------

function renderSchedules() {
  const body = $("#schedules .body");
  const answer = state.schedules;
  if (!answer.available) return fill(body, empty("Schedules live in Temporal, and this server has no Temporal client."));
  if (answer.schedules.length === 0) return fill(body, empty('No schedules. Create one with: agl schedule create nightly --agent post-analyzer --dataset posts --cron "0 2 * * *"'));
  const headers = ["Schedule", "Trains on", "When", "Next runs", "Recent runs"];
  fill(
    body,
    table(
      headers,
      answer.schedules.map((schedule) =>
        row(
          headers,
          [
            h("div", {}, h("strong", {}, schedule.id), " ", schedule.paused ? badge("paused", "warn", schedule.note ?? "") : badge("active", "good"), h("div", { class: "small muted" }, schedule.agent ?? "")),
            schedule.dataset ? `data set ${schedule.dataset}` : `traffic of the last ${duration(schedule.trafficWindowMs ?? 0)}`,
            h("span", {}, schedule.cron !== null ? h("code", {}, schedule.cron) : `every ${duration(schedule.everyMs ?? 0)}`, schedule.timezone ? h("span", { class: "small muted" }, ` ${schedule.timezone}`) : null),
            schedule.nextRuns.length ? h("ul", { class: "plain" }, schedule.nextRuns.slice(0, 3).map((run) => h("li", {}, timeEl(run)))) : h("span", { class: "muted" }, schedule.paused ? "none while paused" : "none"),
            schedule.recentRuns.length
              ? h(
                  "span",
                  { class: "labels" },
                  schedule.recentRuns.slice(-5).map((run) => {
                    const text = badge(run.outcome ?? "not recorded", outcomeTone(run.outcome), `${run.cycleId} · ${new Date(run.scheduledAt).toLocaleString()}${run.detail ? ` · ${run.detail}` : ""}`);
                    return state.temporal?.uiUrl ? h("a", { href: `${state.temporal.uiUrl}/namespaces/${encodeURIComponent(state.temporal.namespace)}/workflows/${encodeURIComponent(run.cycleId)}`, target: "_blank", rel: "noopener" }, text) : text;
                  }),
                )
              : h("span", { class: "muted" }, "no runs yet"),
          ],
          { "data-schedule": schedule.id },
        ),
      ),
    ),
  );
}

// ---------- start ----------

function debounce(action, ms) {
  let timer;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(action, ms);
  };
}

function redrawCharts() {
  for (const box of document.querySelectorAll(".chart .plot")) if (box.lastChart) drawChart(box, box.lastChart);
}

async function start() {
  $("#label-form").addEventListener("submit", submitLabelMove);
  $("#label-cancel").addEventListener("click", () => $("#label-dialog").close());
  $("#compare-form").addEventListener("change", () => refreshDiff());
  const refilter = debounce(() => ((state.rolloutLimit = ROLLOUT_PAGE), refreshRollouts()), 300);
  $("#rollout-filters").addEventListener("input", refilter);
  $("#rollout-filters").addEventListener("submit", (event) => event.preventDefault());
  $("#agent-select").addEventListener("change", (event) => selectAgent(event.target.value));
  $("#agents .body").addEventListener("click", (event) => {
    const tile = event.target.closest("[data-agent]");
    if (tile && tile.dataset.agent !== state.agent) selectAgent(tile.dataset.agent);
  });
  addEventListener("resize", debounce(redrawCharts, 150));
  try {
    const overview = await api("/v1/dashboard/agents");
    const wanted = new URLSearchParams(location.hash.slice(1)).get("agent");
    state.agent = overview.agents.some((agent) => agent.id === wanted) ? wanted : overview.agents[0]?.id;
    if (!state.agent) return showProblem("No agents are registered.");
  } catch (error) {
    setLive(false, error.message);
    return showProblem(`Could not load the dashboard: ${error.message}`);
  }
  tick();
}

function selectAgent(agent) {
  state.agent = agent;
  state.stamp = null;
  state.expanded.clear();
  history.replaceState(null, "", `#agent=${encodeURIComponent(agent)}`);
  refreshNow().catch((error) => showProblem(error.message));
}

start();
