// Build helper: remove dist/ so a rename in src/ never leaves a stale module behind.
import { rmSync } from "node:fs";
rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
