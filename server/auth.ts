import { createHmac, timingSafeEqual } from "node:crypto";
import type { Context, Hono, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";
import { HttpError } from "./http-errors.ts";

/** The dashboard's session cookie: a browser cannot send `Authorization: Bearer` when it loads a page. */
const SESSION_COOKIE = "agl_session";
const LOGIN_PATH = "/login";

/**
 * With a token configured, every request must carry it: `Authorization: Bearer <token>` (scripts, agents)
 * or the session cookie `/login` sets (browsers). A browser asking for a page without either gets the
 * login form with its 401; everything else gets the JSON error.
 */
export function requireToken(token: string): MiddlewareHandler {
  const session = sessionValue(token);
  return async (context, next) => {
    if (new URL(context.req.url).pathname === LOGIN_PATH) return next();
    const header = context.req.header("authorization") ?? "";
    const bearer = header.startsWith("Bearer ") ? header.slice(7) : undefined;
    const cookie = getCookie(context, SESSION_COOKIE);
    if ((bearer !== undefined && sameSecret(bearer, token)) || (cookie !== undefined && sameSecret(cookie, session))) return next();
    if (context.req.method === "GET" && (context.req.header("accept") ?? "").includes("text/html")) return context.html(loginPage(), 401);
    throw new HttpError(401, "unauthorized", `This server needs a token: send Authorization: Bearer <AGL_TOKEN>, or sign in to the dashboard at ${LOGIN_PATH}.`);
  };
}

/**
 * `GET /login` shows a form; `POST /login` (the form) and `GET /login?token=…` (a link to hand out) check
 * the token, set the session cookie and send the browser to the dashboard, so the token leaves the address
 * bar at once. The cookie is HttpOnly (page scripts never see it) and SameSite=Strict (other sites cannot
 * make the browser use it).
 */
export function loginRoutes(app: Hono, token: string): void {
  const session = sessionValue(token);
  const signIn = (context: Context, given: string | undefined) => {
    if (given === undefined) return context.html(loginPage(), 200);
    if (!sameSecret(given, token)) return context.html(loginPage("That token is not this server's AGL_TOKEN."), 401);
    setCookie(context, SESSION_COOKIE, session, { httpOnly: true, sameSite: "Strict", path: "/" });
    return context.redirect("/", 303);
  };
  app.get(LOGIN_PATH, (context) => signIn(context, context.req.query("token")));
  app.post(LOGIN_PATH, async (context) => {
    const form = await context.req.parseBody();
    return signIn(context, typeof form.token === "string" ? form.token : "");
  });
}

/** Derived from the token, so the cookie is worthless once the token changes and never holds the token itself. */
function sessionValue(token: string): string {
  return createHmac("sha256", token).update("agl dashboard session").digest("base64url");
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `problem` is one of this module's own sentences, never request text. */
function loginPage(problem?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>agl · sign in</title>
<style>body{font:16px/1.5 system-ui,sans-serif;margin:0;min-height:100vh;display:grid;place-items:center;background:#f4f5f7;color:#1f2430}
form{background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0001;width:min(22rem,90vw)}h1{font-size:1.25rem;margin:0 0 1rem}
input{width:100%;box-sizing:border-box;padding:.6rem;font:inherit;border:1px solid #c5cad3;border-radius:8px}button{margin-top:1rem;width:100%;padding:.6rem;font:inherit;border:0;border-radius:8px;background:#2f5bd3;color:#fff}
p.problem{color:#b42318}</style></head>
<body><form method="post" action="${LOGIN_PATH}"><h1>agl dashboard</h1>
${problem ? `<p class="problem" role="alert">${problem}</p>` : ""}<label for="token">This server needs its token (AGL_TOKEN).</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus><button type="submit">Sign in</button></form></body></html>`;
}
