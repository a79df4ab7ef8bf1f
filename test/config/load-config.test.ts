import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { ConfigError, loadConfig } from "../../config/load.ts";
import { thrownBy } from "../support/thrown.ts";

let cwd: string;

beforeEach(() => {
  cwd = mkdtempSync(join(tmpdir(), "agl-config-"));
});

afterEach(() => {
  rmSync(cwd, { recursive: true, force: true });
});

function writeConfigFile(content: unknown, name = "agl.config.json"): string {
  const path = join(cwd, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

/** Runs loadConfig expecting a ConfigError and returns its message. */
const configErrorOf = (run: () => unknown): string => thrownBy(run, ConfigError).message;

describe("defaults", () => {
  test("an empty environment and no config file give the embedded, offline defaults", () => {
    const config = loadConfig({ cwd, env: {} });
    expect(config.dataDir).toBe(".agl");
    expect(config.dataPath).toBe(join(cwd, ".agl"));
    expect(config.model.provider).toBe("local");
    expect(config.temporal.address).toBeUndefined();
    expect(config.database.url).toBeUndefined();
    expect(config.server.host).toBe("127.0.0.1");
    expect(config.cycle.margin).toBe(0);
    expect(config.optimizer.command).toEqual([".venv/bin/python", "-m", "agl_optimizer"]);
    expect(config.file).toBeUndefined();
  });

  test("a relative data folder resolves against the cwd option, an absolute one is kept", () => {
    expect(loadConfig({ cwd, env: { AGL_DATA_DIR: "state/here" } }).dataPath).toBe(join(cwd, "state", "here"));
    const absolute = join(tmpdir(), "elsewhere");
    expect(loadConfig({ cwd, env: { AGL_DATA_DIR: absolute } }).dataPath).toBe(absolute);
  });

  test("OPENAI_BASE_URL alone selects the openai-compatible provider", () => {
    const config = loadConfig({ cwd, env: { OPENAI_BASE_URL: "http://127.0.0.1:11434/v1" } });
    expect(config.model.provider).toBe("openai-compatible");
    expect(config.model.baseUrl).toBe("http://127.0.0.1:11434/v1");
  });

  test("an explicit provider wins over the one implied by OPENAI_BASE_URL", () => {
    const config = loadConfig({ cwd, env: { OPENAI_BASE_URL: "http://127.0.0.1:11434/v1", AGL_MODEL: "fake" } });
    expect(config.model.provider).toBe("fake");
  });

  test("an empty environment variable counts as unset", () => {
    expect(loadConfig({ cwd, env: { AGL_CYCLE_CONFIDENCE: "", TEMPORAL_ADDRESS: "" } }).cycle.confidence).toBe(0.9);
  });
});

describe("precedence: defaults < file < environment < overrides", () => {
  test("agl.config.json in cwd is read and reported as the file", () => {
    const file = writeConfigFile({ cycle: { margin: 0.1 }, temporal: { taskQueue: "from-file" } });
    const config = loadConfig({ cwd, env: {} });
    expect(config.cycle.margin).toBe(0.1);
    expect(config.temporal.taskQueue).toBe("from-file");
    expect(config.cycle.batchSize).toBe(20);
    expect(config.file).toBe(file);
  });

  test("the environment wins over the file, overrides win over both", () => {
    writeConfigFile({ cycle: { margin: 0.1, batchSize: 7 } });
    const env = { AGL_CYCLE_MARGIN: "0.2" };
    const fromEnv = loadConfig({ cwd, env });
    expect(fromEnv.cycle.margin).toBe(0.2);
    expect(fromEnv.cycle.batchSize).toBe(7);

    const overridden = loadConfig({ cwd, env, overrides: { cycle: { margin: 0.3 } } });
    expect(overridden.cycle.margin).toBe(0.3);
    expect(overridden.cycle.batchSize).toBe(7);
  });

  test("AGL_CONFIG names the file, relative to cwd, instead of agl.config.json", () => {
    writeConfigFile({ cycle: { margin: 0.1 } });
    mkdirSync(join(cwd, "conf"));
    const other = writeConfigFile({ cycle: { margin: 0.4 } }, join("conf", "other.json"));
    const config = loadConfig({ cwd, env: { AGL_CONFIG: "conf/other.json" } });
    expect(config.cycle.margin).toBe(0.4);
    expect(config.file).toBe(other);
  });

  test("the file option wins over AGL_CONFIG", () => {
    writeConfigFile({ cycle: { margin: 0.4 } }, "from-env.json");
    const chosen = writeConfigFile({ cycle: { margin: 0.5 } }, "chosen.json");
    const config = loadConfig({ cwd, env: { AGL_CONFIG: "from-env.json" }, file: "chosen.json" });
    expect(config.cycle.margin).toBe(0.5);
    expect(config.file).toBe(chosen);
  });

  test("environment values are converted to the setting's type", () => {
    const config = loadConfig({
      cwd,
      env: { AGL_PORT: "8080", AGL_CYCLE_MARGIN: "0.25", AGL_OPTIMIZER_COMMAND: '["python3","-m","x"]', TEMPORAL_ADDRESS: "temporal.internal:7233" },
    });
    expect(config.server.port).toBe(8080);
    expect(config.cycle.margin).toBe(0.25);
    expect(config.optimizer.command).toEqual(["python3", "-m", "x"]);
    expect(config.temporal.address).toBe("temporal.internal:7233");
  });
});

describe("bad values fail with the key, the value, the source and what is allowed", () => {
  test("a non-number in a number variable", () => {
    const message = configErrorOf(() => loadConfig({ cwd, env: { AGL_CYCLE_MARGIN: "abc" } }));
    expect(message).toContain("cycle.margin");
    expect(message).toContain('"abc"');
    expect(message).toContain("AGL_CYCLE_MARGIN");
    expect(message).toContain("expected a number");
  });

  test("a fraction in a whole-number variable", () => {
    const message = configErrorOf(() => loadConfig({ cwd, env: { AGL_PORT: "12.5" } }));
    expect(message).toContain("server.port");
    expect(message).toContain('"12.5"');
    expect(message).toContain("AGL_PORT");
    expect(message).toContain("whole number");
  });

  test("a number out of range in the file", () => {
    const file = writeConfigFile({ cycle: { margin: 5 } });
    const message = configErrorOf(() => loadConfig({ cwd, env: {} }));
    expect(message).toContain("cycle.margin = 5");
    expect(message).toContain(file);
    expect(message).toContain("<=2");
  });

  test("an unknown key in the file names the typo, its value and the known settings", () => {
    const file = writeConfigFile({ cycle: { marginn: 0.1 } });
    const message = configErrorOf(() => loadConfig({ cwd, env: {} }));
    expect(message).toContain("cycle.marginn");
    expect(message).toContain("0.1");
    expect(message).toContain(file);
    expect(message).toContain("unknown setting");
    expect(message).toMatch(/known settings in cycle: .*\bmargin\b/);
  });

  test("an unknown section in the file is traced to the file, not to the defaults", () => {
    const file = writeConfigFile({ cycles: { margin: 0.1 } });
    const message = configErrorOf(() => loadConfig({ cwd, env: {} }));
    expect(message).toContain("cycles");
    expect(message).toContain(file);
    expect(message).not.toContain("(from default)");
    expect(message).toMatch(/known settings: .*\bcycle\b/);
  });

  test("an object where a number belongs is traced to the file", () => {
    const file = writeConfigFile({ cycle: { margin: { value: 0.1 } } });
    const message = configErrorOf(() => loadConfig({ cwd, env: {} }));
    expect(message).toContain('cycle.margin = {"value":0.1}');
    expect(message).toContain(file);
    expect(message).toContain("expected number");
  });

  test("a value outside an enum", () => {
    const message = configErrorOf(() => loadConfig({ cwd, env: { AGL_MODEL: "gpt" } }));
    expect(message).toContain('model.provider = "gpt"');
    expect(message).toContain("AGL_MODEL");
    for (const allowed of ["local", "fake", "openai-compatible"]) expect(message).toContain(`"${allowed}"`);
  });

  test("a database URL that is not PostgreSQL", () => {
    const message = configErrorOf(() => loadConfig({ cwd, env: { DATABASE_URL: "mysql://x" } }));
    expect(message).toContain('database.url = "mysql://x"');
    expect(message).toContain("DATABASE_URL");
    expect(message).toContain("postgres://");
  });

  test("a Temporal address without a port", () => {
    const message = configErrorOf(() => loadConfig({ cwd, env: { TEMPORAL_ADDRESS: "localhost" } }));
    expect(message).toContain('temporal.address = "localhost"');
    expect(message).toContain("TEMPORAL_ADDRESS");
    expect(message).toContain("host:port");
  });

  test("a Temporal UI URL: http(s) only, a trailing slash dropped", () => {
    expect(loadConfig({ cwd, env: { TEMPORAL_UI_URL: "https://temporal.internal:8080/" } }).temporal.uiUrl).toBe("https://temporal.internal:8080");
    const message = configErrorOf(() => loadConfig({ cwd, env: { TEMPORAL_UI_URL: "temporal.internal:8080" } }));
    expect(message).toContain('temporal.uiUrl = "temporal.internal:8080"');
    expect(message).toContain("TEMPORAL_UI_URL");
    expect(message).toContain("expected an http:// or https:// URL");
  });

  test("a JSON syntax error in the file", () => {
    const file = writeConfigFile('{"cycle": {"margin": 0.1,}}');
    const message = configErrorOf(() => loadConfig({ cwd, env: {} }));
    expect(message).toContain(file);
    expect(message).toContain("not valid JSON");
  });

  test("a file whose top level is not an object", () => {
    const file = writeConfigFile("[1, 2]");
    const message = configErrorOf(() => loadConfig({ cwd, env: {} }));
    expect(message).toContain(file);
    expect(message).toContain("JSON object");
  });

  test("an explicit config file that does not exist, from the file option or AGL_CONFIG", () => {
    const fromOption = configErrorOf(() => loadConfig({ cwd, env: {}, file: "missing.json" }));
    expect(fromOption).toContain(join(cwd, "missing.json"));
    expect(fromOption).toContain("does not exist");
    expect(fromOption).toContain("--config");

    const fromEnv = configErrorOf(() => loadConfig({ cwd, env: { AGL_CONFIG: "missing.json" } }));
    expect(fromEnv).toContain(join(cwd, "missing.json"));
    expect(fromEnv).toContain("AGL_CONFIG");
  });

  test("the openai-compatible provider without a base URL", () => {
    const file = writeConfigFile({ model: { provider: "openai-compatible" } });
    const message = configErrorOf(() => loadConfig({ cwd, env: {} }));
    expect(message).toContain('model.provider = "openai-compatible"');
    expect(message).toContain(file);
    expect(message).toContain("model.baseUrl");
    expect(message).toContain("OPENAI_BASE_URL");
  });

  test("a server listening beyond loopback without a token", () => {
    const message = configErrorOf(() => loadConfig({ cwd, env: { AGL_HOST: "0.0.0.0" } }));
    expect(message).toContain('server.host = "0.0.0.0"');
    expect(message).toContain("AGL_HOST");
    expect(message).toContain("server.token");
    expect(message).toContain("AGL_TOKEN");
  });

  test("a server beyond loopback with a long enough token is accepted", () => {
    const config = loadConfig({ cwd, env: { AGL_HOST: "0.0.0.0", AGL_TOKEN: "a-token-of-sixteen+" } });
    expect(config.server.host).toBe("0.0.0.0");
  });

  test("a bad override is reported as coming from an override", () => {
    const message = configErrorOf(() => loadConfig({ cwd, env: {}, overrides: { cycle: { margin: -1 } } }));
    expect(message).toContain("cycle.margin = -1");
    expect(message).toContain("(from override)");
    expect(message).toContain(">=0");
  });

  test("several problems are reported together", () => {
    writeConfigFile({ cycle: { margin: 5 }, model: { provider: "gpt" } });
    const message = configErrorOf(() => loadConfig({ cwd, env: { DATABASE_URL: "mysql://x" } }));
    expect(message).toContain("cycle.margin");
    expect(message).toContain("model.provider");
    expect(message).toContain("database.url");
  });
});
