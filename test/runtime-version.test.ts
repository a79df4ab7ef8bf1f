import { expect, test } from "vitest";

test("tests run on the project's own Node 24 runtime", () => {
  expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(24);
});
