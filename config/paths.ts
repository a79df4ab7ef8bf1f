import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Where this project is installed: the setup command puts the Python venv (optimizer, Temporal CLI) here. */
export const INSTALL_ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Tools installed by the setup command are named relative to the install, not to where `agl` runs. */
export function installPath(path: string): string {
  return isAbsolute(path) || !path.includes("/") ? path : resolve(INSTALL_ROOT, path);
}
