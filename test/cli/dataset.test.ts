import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { fundingExtractor } from "../../agents/examples.ts";
import { agl, bundledTasks, createPrivateDatabase, json, type PrivateDatabase, removeDir, scaledEnv, tempDir } from "./support.ts";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe("agl dataset import and list (PostgreSQL store)", () => {
  let db: PrivateDatabase;
  let env: Record<string, string>;
  let dir: string;
  const posts = bundledTasks();

  /** Writes a JSONL file of the given lines (objects are serialised, strings written as they are). */
  function writeJsonl(name: string, lines: (object | string)[]): string {
    const file = join(dir, name);
    writeFileSync(file, lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n") + "\n");
    return file;
  }
  const datasetList = async () => {
    const result = await agl(["dataset", "list", "--json"], { env });
    expect(result.exitCode, result.stderr).toBe(0);
    return json<any[]>(result);
  };

  beforeAll(async () => {
    db = await createPrivateDatabase();
    env = scaledEnv(db);
    dir = tempDir("agl-cli-datasets-");
  });
  afterAll(async () => {
    await db?.close();
    removeDir(dir);
    removeDir(env?.AGL_DATA_DIR);
  });

  /** The summary of the first good import, compared after the failed attempts. */
  let firstImport: any;

  test("a valid file imports: JSON summary with split counts, listed afterwards", async () => {
    expect(await datasetList()).toEqual([]);
    const file = writeJsonl("good.jsonl", [
      ...posts.filter((t) => t.split === "train").slice(0, 4),
      ...posts.filter((t) => t.split === "validation").slice(0, 2),
      // No split: takes --split. Expected is partial (one field) on this line, absent on the next.
      { id: "extra-1", input: posts[0]!.input, expected: { category: "general" } },
      { id: "extra-2", input: { content: "Second line without a split or a label." } },
      "",
    ]);
    const result = await agl(["dataset", "import", file, "--name", "small.v1", "--split", "test", "--json"], { env });
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    firstImport = json(result);
    expect(firstImport).toEqual({
      name: "small.v1",
      agent: "post-analyzer",
      source: file,
      taskCount: 8,
      splits: { train: 4, validation: 2, test: 2 },
      createdAt: expect.stringMatching(ISO_TIME),
    });
    expect(await datasetList()).toEqual([firstImport]);
    const stored = await db.query<{ id: string; split: string; expected: unknown }>("SELECT id, split, expected FROM tasks WHERE dataset = 'small.v1' ORDER BY position");
    expect(stored.map((t) => t.id)).toEqual([...posts.filter((t) => t.split === "train").slice(0, 4), ...posts.filter((t) => t.split === "validation").slice(0, 2)].map((t) => t.id).concat("extra-1", "extra-2"));
    expect(stored.slice(-2)).toEqual([
      { id: "extra-1", split: "test", expected: { category: "general" } },
      { id: "extra-2", split: "test", expected: null },
    ]);

    // Without --json: one line naming the counts. A relative path resolves against the working directory.
    writeJsonl("relative.jsonl", posts.slice(0, 3));
    const human = await agl(["dataset", "import", "relative.jsonl", "--name", "rel"], { env, cwd: dir });
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/^Imported 3 tasks into "rel" for post-analyzer: (train \d|validation \d)(, (train|validation) \d)*\.\n$/);
    expect((await datasetList()).find((d) => d.name === "rel")).toMatchObject({ source: join(dir, "relative.jsonl"), taskCount: 3 });
  });

  test("one bad line rejects the whole file with FILE:LINE and the reason; nothing is imported", async () => {
    expect(firstImport, "needs the import of the previous test").toBeDefined();
    const before = await datasetList();
    const [a, b, c, d] = posts;
    const cases: { name: string; line3: object | string; reason: RegExp }[] = [
      { name: "label", line3: { ...c!, expected: { category: "sports", sentiment: "positive" } }, reason: /expected does not match agent "post-analyzer"'s output: expected\.category: .*"technology"/ },
      { name: "json", line3: '{"id": "broken", "input": {', reason: /not valid JSON/ },
      { name: "input", line3: { id: "x", input: { text: "no content field" } }, reason: /input does not match agent "post-analyzer": input(\.content)?: .*/ },
      { name: "field", line3: { ...c!, weight: 2 }, reason: /unknown field "weight"/ },
      { name: "duplicate", line3: { ...c!, id: a!.id }, reason: new RegExp(`duplicate id "${a!.id}" \\(first used on line 1\\)`) },
    ];
    const files = cases.map((bad) => writeJsonl(`bad-${bad.name}.jsonl`, [a!, b!, bad.line3, d!]));
    const results = await Promise.all(cases.map((bad, index) => agl(["dataset", "import", files[index]!, "--name", `bad-${bad.name}`], { env })));
    for (const [index, bad] of cases.entries()) {
      const [file, result] = [files[index]!, results[index]!];
      expect(result.exitCode, bad.name).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(new RegExp(`^error: ${escape(file)}:3: `));
      expect(result.stderr, bad.name).toMatch(bad.reason);
      expect(result.stderr).toContain("Nothing was imported.");
    }
    expect(await datasetList()).toEqual(before);
    expect(await db.count("datasets", "name LIKE 'bad-%'")).toBe(0);
    expect(await db.count("tasks", "dataset LIKE 'bad-%'")).toBe(0);

    const [missing, empty] = await Promise.all([
      agl(["dataset", "import", join(dir, "nope.jsonl"), "--name", "missing"], { env }),
      agl(["dataset", "import", writeJsonl("empty.jsonl", ["", "  "]), "--name", "empty"], { env }),
    ]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain(`error: ${join(dir, "nope.jsonl")}: cannot read the file`);
    expect(empty.exitCode).toBe(2);
    expect(empty.stderr).toContain("the file has no tasks. Nothing was imported.");
    expect(await datasetList()).toEqual(before);
  });

  test("importing an existing name conflicts and leaves the first intact; --replace replaces it", async () => {
    expect(firstImport, "needs the import of the previous test").toBeDefined();
    const other = writeJsonl("other.jsonl", posts.slice(10, 13));
    const again = await agl(["dataset", "import", other, "--name", "small.v1", "--json"], { env });
    expect(again.exitCode).toBe(2);
    expect(again.stdout).toBe("");
    expect(again.stderr).toBe('error: Dataset "small.v1" already exists. Choose another --name, or pass --replace to replace its tasks.\n');
    expect((await datasetList()).find((d) => d.name === "small.v1")).toEqual(firstImport);
    expect(await db.count("tasks", "dataset = 'small.v1'")).toBe(8);

    const replaced = await agl(["dataset", "import", other, "--name", "small.v1", "--replace", "--json"], { env });
    expect(replaced.exitCode).toBe(0);
    const summary = json(replaced);
    expect(summary).toMatchObject({ name: "small.v1", source: other, taskCount: 3 });
    expect(Object.values(summary.splits as Record<string, number>).reduce((sum, n) => sum + n, 0)).toBe(3);
    expect((await datasetList()).find((d) => d.name === "small.v1")).toEqual(summary);
    const ids = await db.query<{ id: string }>("SELECT id FROM tasks WHERE dataset = 'small.v1' ORDER BY position");
    expect(ids.map((row) => row.id)).toEqual(posts.slice(10, 13).map((t) => t.id));
  });

  test("without --agent, the file goes to the one registered agent whose input fits its first task", async () => {
    const announcements = readFileSync(fundingExtractor.datasets["funding-announcements"]!, "utf8").split("\n").slice(0, 3);
    const [funding, unfit] = await Promise.all([
      agl(["dataset", "import", writeJsonl("announcements.jsonl", announcements), "--name", "announcements", "--json"], { env }),
      agl(["dataset", "import", writeJsonl("unfit.jsonl", [{ id: "u1", input: { body: "fits no agent" } }]), "--name", "unfit"], { env }),
    ]);
    expect(funding.exitCode, funding.stderr).toBe(0);
    expect(json(funding)).toMatchObject({ name: "announcements", agent: "funding-extractor", taskCount: 3 });
    expect(unfit.exitCode).toBe(2);
    expect(unfit.stderr).toBe(
      `error: ${join(dir, "unfit.jsonl")}: the first task's input fits no registered agent; pass --agent (registered: post-analyzer, funding-extractor, support-reply).\n`,
    );
    expect((await datasetList()).map((d) => d.name)).not.toContain("unfit");
  });

  test("invalid --name, --split or --agent is a usage error and writes nothing", async () => {
    const file = writeJsonl("names.jsonl", posts.slice(0, 2));
    const before = await datasetList();
    const names = ["bad name", "-x", ".hidden", "a/b", "x".repeat(101)];
    const [split, agent, noName, ...badNames] = await Promise.all([
      agl(["dataset", "import", file, "--name", "ok", "--split", "holdout"], { env }),
      agl(["dataset", "import", file, "--name", "ok", "--agent", "nope"], { env }),
      agl(["dataset", "import", file], { env }),
      ...names.map((name) => agl(["dataset", "import", file, `--name=${name}`], { env })),
    ]);
    badNames.forEach((result, index) => {
      expect(result.exitCode, names[index]).toBe(2);
      expect(result.stderr, names[index]).toMatch(/^error: --name ".*" must be 1-100 letters, digits, dots, dashes or underscores\.\n$/);
    });
    expect(split.exitCode).toBe(2);
    expect(split.stderr).toContain("error: option '--split <split>' argument 'holdout' is invalid. Allowed choices are train, validation, test.");
    expect(split.stderr).toContain("(run with --help for usage)");
    expect(agent.exitCode).toBe(2);
    expect(agent.stderr).toBe('error: Unknown agent "nope". Known agents: post-analyzer, funding-extractor, support-reply.\n');
    expect(noName.exitCode).toBe(2);
    expect(noName.stderr).toContain("error: required option '--name <name>' not specified");
    expect(await datasetList()).toEqual(before);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
