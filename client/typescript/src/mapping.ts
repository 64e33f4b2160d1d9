// Addressing layer: backtest-kit's file layout ⇄ persistd (domain, entity, key), one place.
//
// backtest-kit's default file adapters store a value at `<baseDir>/<entityName>/<entityId>.json`.
// The rule, for every domain:
//
//   domain = the domain folder: `dump/data/<domain>/` for 13 domains, `dump/<domain>/` for
//            memory, state, session and (backtest-kit 20.x) dictionary
//   entity = the directory path below the domain folder, joined with `/`
//   key    = the file name without `.json`
//
// so `dump/data/candle/binance/BTCUSDT/1m/1704066900000.json` is
// (candle, `binance/BTCUSDT/1m`, `1704066900000`) and back. `/` is legal inside an entity name
// (the client percent-encodes it), so the mapping is reversible without escaping.

/** Where one record lives in persistd (and in a `./dump`). */
export interface Address {
  domain: string;
  entity: string;
  key: string;
}

/** Where a domain's folder is in a `./dump` directory. */
export const DUMP_FOLDERS: Readonly<Record<string, string>> = {
  signal: "dump/data/signal",
  risk: "dump/data/risk",
  schedule: "dump/data/schedule",
  strategy: "dump/data/strategy",
  partial: "dump/data/partial",
  breakeven: "dump/data/breakeven",
  candle: "dump/data/candle",
  storage: "dump/data/storage",
  notification: "dump/data/notification",
  log: "dump/data/log",
  measure: "dump/data/measure",
  interval: "dump/data/interval",
  memory: "dump/memory",
  recent: "dump/data/recent",
  state: "dump/state",
  session: "dump/session",
  dictionary: "dump/dictionary",
};

const mode = (backtest: boolean): string => (backtest ? "backtest" : "live");
const context = (symbol: string, strategyName: string, exchangeName: string): string =>
  `${symbol}_${strategyName}_${exchangeName}`;

/**
 * The entity (and, where it is fixed by the context, the key) of each domain, from the
 * constructor arguments backtest-kit passes. Mirrors the default file instances of 19.5.0.
 */
export const addressOf = {
  signal: (symbol: string, strategyName: string, exchangeName: string) => ({
    domain: "signal",
    entity: context(symbol, strategyName, exchangeName),
    key: symbol,
  }),
  risk: (riskName: string, exchangeName: string) => ({
    domain: "risk",
    entity: `${riskName}_${exchangeName}`,
    key: "positions",
  }),
  schedule: (symbol: string, strategyName: string, exchangeName: string) => ({
    domain: "schedule",
    entity: context(symbol, strategyName, exchangeName),
    key: symbol,
  }),
  strategy: (symbol: string, strategyName: string, exchangeName: string) => ({
    domain: "strategy",
    entity: context(symbol, strategyName, exchangeName),
    key: "strategy",
  }),
  /** key = signalId, per call */
  partial: (symbol: string, strategyName: string, exchangeName: string) => ({
    domain: "partial",
    entity: context(symbol, strategyName, exchangeName),
  }),
  /** key = signalId, per call */
  breakeven: (symbol: string, strategyName: string, exchangeName: string) => ({
    domain: "breakeven",
    entity: context(symbol, strategyName, exchangeName),
  }),
  /** key = String(candle.timestamp), per candle */
  candle: (symbol: string, interval: string, exchangeName: string) => ({
    domain: "candle",
    entity: `${exchangeName}/${symbol}/${interval}`,
  }),
  /** key = item.id */
  storage: (backtest: boolean) => ({ domain: "storage", entity: mode(backtest) }),
  /** key = item.id */
  notification: (backtest: boolean) => ({ domain: "notification", entity: mode(backtest) }),
  /** key = entry.id */
  log: () => ({ domain: "log", entity: "log" }),
  /** key = the measure key */
  measure: (bucket: string) => ({ domain: "measure", entity: bucket }),
  /** key = the interval key */
  interval: (bucket: string) => ({ domain: "interval", entity: bucket }),
  /** key = memoryId */
  memory: (signalId: string, bucketName: string) => ({
    domain: "memory",
    entity: `${signalId}/${bucketName}`,
  }),
  recent: (
    symbol: string,
    strategyName: string,
    exchangeName: string,
    frameName: string,
    backtest: boolean,
  ) => ({
    domain: "recent",
    entity: [symbol, strategyName, exchangeName, ...(frameName ? [frameName] : []), mode(backtest)].join("_"),
    key: symbol,
  }),
  state: (signalId: string, bucketName: string) => ({
    domain: "state",
    entity: `${signalId}/${bucketName}`,
    key: bucketName,
  }),
  session: (
    strategyName: string,
    exchangeName: string,
    frameName: string,
    symbol: string,
    backtest: boolean,
  ) => ({
    domain: "session",
    // In live mode frameName is "" and the file sits directly in `<strategy>/<exchange>/`.
    entity: [strategyName, exchangeName, ...(frameName ? [frameName] : [])].join("/"),
    key: `${symbol}_${mode(backtest)}`,
  }),
  /** backtest-kit 20.x: `./dump/dictionary/<signalId>/<dictionaryName>.json` */
  dictionary: (signalId: string, dictionaryName: string) => ({
    domain: "dictionary",
    entity: signalId,
    key: dictionaryName,
  }),
} as const;

/** The dump file (relative to the directory holding `dump/`) of an address. */
export function dumpPath(address: Address): string {
  const folder = DUMP_FOLDERS[address.domain] ?? `dump/data/${address.domain}`;
  return `${folder}/${address.entity}/${address.key}.json`;
}

/** The address of a dump file path (relative, `/`-separated, starting at `dump/`); undefined if it is not one. */
export function addressOfDumpPath(path: string): Address | undefined {
  const parts = path.replace(/\\/g, "/").split("/").filter((p) => p !== "" && p !== ".");
  if (parts[0] !== "dump" || !parts[parts.length - 1]!.endsWith(".json")) return undefined;
  const file = parts[parts.length - 1]!;
  if (file.startsWith(".tmp-")) return undefined;
  let domain: string | undefined;
  let below: string[];
  if (parts[1] === "data") {
    domain = parts[2];
    below = parts.slice(3, -1);
  } else {
    domain = parts[1];
    below = parts.slice(2, -1);
  }
  if (!domain || below.length === 0) return undefined;
  return { domain, entity: below.join("/"), key: file.slice(0, -".json".length) };
}

/**
 * The seed form's address: `new PersistBase(entityName, baseDir)`. The domain is the last folder
 * of baseDir; when baseDir lies inside a `dump/memory`, `dump/state` or `dump/session` folder the
 * folders below it prefix the entity, exactly as in `addressOfDumpPath`.
 */
export function addressOfBase(entityName: string, baseDir: string): { domain: string; entity: string } {
  const parts = baseDir.replace(/\\/g, "/").split("/").filter((p) => p !== "" && p !== ".");
  const dump = parts.lastIndexOf("dump");
  if (dump >= 0 && ["memory", "state", "session", "dictionary"].includes(parts[dump + 1] ?? "")) {
    const below = parts.slice(dump + 2);
    return { domain: parts[dump + 1]!, entity: [...below, entityName].join("/") };
  }
  const domain = parts[parts.length - 1];
  if (!domain) throw new Error(`PersistBase baseDir ${JSON.stringify(baseDir)} has no folder to use as domain`);
  return { domain: domain.toLowerCase(), entity: entityName };
}
