import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { execa } from "execa";
import { installPath } from "../config/paths.ts";
import {
  contractViolations,
  OPTIMIZER_CONTRACT_VERSION,
  type OptimizerRequest,
  type OptimizerResponse,
  optimizerRequestSchema,
  optimizerResponseSchema,
} from "./optimizer-contract.ts";

/** The optimizer's exit code for input it refuses; any other failure is a crash worth retrying. */
const EXIT_BAD_INPUT = 2;
const STDERR_TAIL_LINES = 40;

/**
 * Runs as `python -c DIES_WITH_PARENT <parent pid> <program> <args…>`: asks Linux to SIGKILL this process when
 * its parent dies (PR_SET_PDEATHSIG, kept across exec), then becomes the optimizer, same pid. Without it a worker
 * killed with SIGKILL leaves the optimizer running as an orphan, writing a response nobody waits for.
 */
const DIES_WITH_PARENT = [
  "import ctypes, os, signal, sys",
  "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)",
  // The parent may have died before the line above: then nobody would kill us.
  "os.getppid() == int(sys.argv[1]) or os._exit(1)",
  "os.execv(sys.argv[2], sys.argv[2:])",
].join("\n");

export type OptimizerFailureKind = "bad-input" | "contract" | "crashed" | "timed-out" | "cancelled";

export class OptimizerError extends Error {
  override name = "OptimizerError";
  readonly kind: OptimizerFailureKind;
  /** Bad input and contract violations fail the same way every time; crashes and hangs may not. */
  readonly retryable: boolean;
  constructor(kind: OptimizerFailureKind, message: string) {
    super(message);
    this.kind = kind;
    this.retryable = kind === "crashed" || kind === "timed-out";
  }
}

export interface OptimizerProgress {
  done: number;
  total: number;
  message: string;
}

export interface RunOptimizerOptions {
  /** The program and its leading arguments, e.g. [".venv/bin/python", "-m", "agl_optimizer"]. */
  command: readonly string[];
  /** Folder for the request/response files. */
  workDir: string;
  request: OptimizerRequest;
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (progress: OptimizerProgress) => void;
}

/**
 * The one way into the Python optimizer: a child process (no shell, arguments as a list) that reads a
 * request file and writes a response file, both named by the request id so a retried activity finds
 * the answer of an attempt that finished before its worker died. Both files are checked against the
 * versioned contract, on the way in and on the way out.
 */
export async function runOptimizer(options: RunOptimizerOptions): Promise<OptimizerResponse> {
  const parsedRequest = optimizerRequestSchema.safeParse(options.request);
  if (!parsedRequest.success) {
    const issues = parsedRequest.error.issues.map((issue) => `${issue.path.join(".") || "request"}: ${issue.message}`);
    throw new OptimizerError("contract", `The optimizer request breaks contract v${OPTIMIZER_CONTRACT_VERSION} before it was sent: ${issues.slice(0, 5).join("; ")}`);
  }
  const request = parsedRequest.data;
  await mkdir(options.workDir, { recursive: true });
  const base = join(options.workDir, fileNameFor(request.request_id));
  const inputFile = `${base}.request.json`;
  const outputFile = `${base}.response.json`;

  if (existsSync(outputFile)) {
    const previous = await readResponse(outputFile, request).catch(() => undefined);
    if (previous) return previous;
  }
  await writeFile(`${inputFile}.tmp`, JSON.stringify(request));
  await rename(`${inputFile}.tmp`, inputFile);

  const [program, ...leadingArgs] = options.command;
  const stderrTail: string[] = [];
  const child = execa(...diesWithWorker(installPath(program!), [...leadingArgs, "propose", "--input", inputFile, "--output", outputFile]), {
    reject: false,
    stdin: "ignore",
    timeout: options.timeoutMs,
    forceKillAfterDelay: 5_000,
    ...(options.signal ? { cancelSignal: options.signal } : {}),
    env: { PYTHONUNBUFFERED: "1" },
    stdout: "ignore",
    stderr: ["pipe"],
    buffer: { stderr: false },
  });
  child.stderr?.setEncoding("utf8");
  let pending = "";
  child.stderr?.on("data", (chunk: string) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) handleStderrLine(line, stderrTail, options.onProgress);
  });
  const result = await child;
  if (pending) handleStderrLine(pending, stderrTail, options.onProgress);
  const tail = stderrTail.join("\n");

  if (result.isCanceled) throw new OptimizerError("cancelled", "The optimizer was cancelled and its process killed.");
  if (result.timedOut) {
    throw new OptimizerError("timed-out", `The optimizer ran longer than ${Math.round(options.timeoutMs / 1000)} s and was killed.${tail ? `\n${tail}` : ""}`);
  }
  if (result.failed && result.exitCode === undefined) {
    throw new OptimizerError("crashed", `The optimizer could not run or was killed (${result.signal ?? result.shortMessage}).${tail ? `\n${tail}` : ""}`);
  }
  if (result.exitCode === EXIT_BAD_INPUT) {
    const reason = stderrTail.findLast((line) => line.startsWith("error:")) ?? tail;
    throw new OptimizerError("bad-input", `The optimizer refused its input: ${reason.replace(/^error:\s*/, "")}`);
  }
  if (result.exitCode !== 0) throw new OptimizerError("crashed", `The optimizer crashed (exit code ${result.exitCode}).${tail ? `\n${tail}` : ""}`);
  if (!existsSync(outputFile)) throw new OptimizerError("contract", "The optimizer exited successfully but wrote no response file.");
  return readResponse(outputFile, request);
}

async function readResponse(file: string, request: OptimizerRequest): Promise<OptimizerResponse> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new OptimizerError("contract", `The optimizer's response ${file} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = optimizerResponseSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join(".") || "response"}: ${issue.message}`);
    throw new OptimizerError("contract", `The optimizer's response breaks contract v${request.schema_version}: ${issues.slice(0, 5).join("; ")}`);
  }
  const problems = contractViolations(request, parsed.data);
  if (problems.length > 0) throw new OptimizerError("contract", `The optimizer's response breaks the contract: ${problems.slice(0, 5).join("; ")}`);
  return parsed.data;
}

function handleStderrLine(line: string, tail: string[], onProgress: RunOptimizerOptions["onProgress"]): void {
  const trimmed = line.trim();
  if (!trimmed) return;
  if (trimmed.startsWith("{")) {
    try {
      const event = JSON.parse(trimmed) as { event?: string; done?: number; total?: number; message?: string };
      if (event.event === "progress") {
        onProgress?.({ done: Number(event.done ?? 0), total: Number(event.total ?? 0), message: String(event.message ?? "") });
        return;
      }
    } catch {
      // Not a progress event: keep it as diagnostic text.
    }
  }
  tail.push(trimmed);
  if (tail.length > STDERR_TAIL_LINES) tail.shift();
}

/** Only a Python program can run the guard, and only Linux has PR_SET_PDEATHSIG; anything else runs as it is. */
function diesWithWorker(program: string, args: string[]): [string, string[]] {
  if (process.platform !== "linux" || !/^python[\d.]*$/.test(basename(program))) return [program, args];
  return [program, ["-c", DIES_WITH_PARENT, String(process.pid), program, ...args]];
}

function fileNameFor(requestId: string): string {
  return requestId.replace(/[^A-Za-z0-9._-]+/g, "_");
}
