// Starts tests/ts/sim_bridge.py (the Python simulator behind the TypeScript tests) and reads the one JSON line it
// prints with its URLs and settings. Not a test file itself: `node --test` runs only the `*.test.js` files.

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../..", import.meta.url)); // .ts-build/tests/ts/ → the repository

/** The running bridge (close its stdin to stop it) and the first line it printed. */
export async function startBridge(args: string[] = []): Promise<{ bridge: ChildProcess; firstLine: string }> {
  const python = process.env.IBKR_PYTHON ?? `${repo}.venv/bin/python`;
  const bridge = spawn(python, [`${repo}tests/ts/sim_bridge.py`, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const firstLine = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the simulator bridge did not start within 30 s")), 30_000);
    bridge.on("error", reject);
    bridge.on("exit", (code) => reject(new Error(`the simulator bridge exited (${code})`)));
    createInterface({ input: bridge.stdout! }).once("line", (line) => {
      clearTimeout(timer);
      resolve(line);
    });
  });
  return { bridge, firstLine };
}
