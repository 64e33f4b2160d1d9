// Types layer: the backtest-kit instance contracts (16 in 19.x, Dictionary from 20.x), restated
// structurally.
//
// The package does not import backtest-kit's types (it stays buildable and usable without it);
// these interfaces have the same method names and parameter lists, so the classes are accepted
// by backtest-kit's `usePersist*Adapter` hooks. Row types are left open (`Doc`): the
// service stores whatever backtest-kit writes, whole.

/** A JSON object as backtest-kit writes it (rows, snapshots, entries). */
export type JsonObject = { [key: string]: any };

/**
 * A document in a contract's signature: backtest-kit's own row type (ISignalRow, StrategyData,
 * IRiskActivePosition, ...). `any` so that the classes fit backtest-kit's hooks without this
 * package importing its types.
 */
export type Doc = any;

/** backtest-kit's candle row. */
export interface CandleData {
  timestamp: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export type RiskData = Array<[string, Doc]>;
export type PartialData = Record<string, Doc>;
export type BreakevenData = Record<string, Doc>;

export interface IPersistSignalInstance {
  waitForInit(initial: boolean): Promise<void>;
  readSignalData(): Promise<Doc | null>;
  writeSignalData(signalRow: Doc | null): Promise<void>;
}

export interface IPersistRiskInstance {
  waitForInit(initial: boolean): Promise<void>;
  readPositionData(when: Date): Promise<RiskData>;
  writePositionData(riskRow: RiskData, when: Date): Promise<void>;
}

export interface IPersistScheduleInstance {
  waitForInit(initial: boolean): Promise<void>;
  readScheduleData(): Promise<Doc | null>;
  writeScheduleData(scheduledSignalRow: Doc | null): Promise<void>;
}

export interface IPersistStrategyInstance {
  waitForInit(initial: boolean): Promise<void>;
  readStrategyData(): Promise<Doc | null>;
  writeStrategyData(row: Doc | null): Promise<void>;
}

export interface IPersistPartialInstance {
  waitForInit(initial: boolean): Promise<void>;
  readPartialData(signalId: string, when: Date): Promise<PartialData>;
  writePartialData(data: PartialData, signalId: string, when: Date): Promise<void>;
}

export interface IPersistBreakevenInstance {
  waitForInit(initial: boolean): Promise<void>;
  readBreakevenData(signalId: string, when: Date): Promise<BreakevenData>;
  writeBreakevenData(data: BreakevenData, signalId: string, when: Date): Promise<void>;
}

export interface IPersistCandleInstance {
  waitForInit(initial: boolean): Promise<void>;
  readCandlesData(
    limit: number,
    sinceTimestamp: number,
    untilTimestamp: number,
  ): Promise<CandleData[] | null>;
  writeCandlesData(candles: CandleData[]): Promise<void>;
}

export interface IPersistStorageInstance {
  waitForInit(initial: boolean): Promise<void>;
  readStorageData(): Promise<Doc[]>;
  writeStorageData(signals: Doc[]): Promise<void>;
}

export interface IPersistNotificationInstance {
  waitForInit(initial: boolean): Promise<void>;
  readNotificationData(): Promise<Doc[]>;
  writeNotificationData(notifications: Doc[]): Promise<void>;
}

export interface IPersistLogInstance {
  waitForInit(initial: boolean): Promise<void>;
  readLogData(): Promise<Doc[]>;
  writeLogData(entries: Doc[]): Promise<void>;
}

export interface IPersistMeasureInstance {
  waitForInit(initial: boolean): Promise<void>;
  readMeasureData(key: string): Promise<Doc | null>;
  writeMeasureData(data: Doc, key: string, when: Date): Promise<void>;
  removeMeasureData(key: string): Promise<void>;
  listMeasureData(): AsyncGenerator<string>;
}

export interface IPersistIntervalInstance {
  waitForInit(initial: boolean): Promise<void>;
  readIntervalData(key: string): Promise<Doc | null>;
  writeIntervalData(data: Doc, key: string, when: Date): Promise<void>;
  removeIntervalData(key: string): Promise<void>;
  listIntervalData(): AsyncGenerator<string>;
}

export interface IPersistMemoryInstance {
  waitForInit(initial: boolean): Promise<void>;
  readMemoryData(memoryId: string): Promise<Doc | null>;
  hasMemoryData(memoryId: string): Promise<boolean>;
  writeMemoryData(data: Doc, memoryId: string, when: Date): Promise<void>;
  removeMemoryData(memoryId: string): Promise<void>;
  listMemoryData(): AsyncGenerator<{ memoryId: string; data: Doc }>;
  dispose(): void;
}

export interface IPersistRecentInstance {
  waitForInit(initial: boolean): Promise<void>;
  readRecentData(): Promise<Doc | null>;
  writeRecentData(signalRow: Doc, when: Date): Promise<void>;
}

export interface IPersistStateInstance {
  waitForInit(initial: boolean): Promise<void>;
  readStateData(): Promise<Doc | null>;
  writeStateData(data: Doc, when: Date): Promise<void>;
  dispose(): void;
}

export interface IPersistSessionInstance {
  waitForInit(initial: boolean): Promise<void>;
  readSessionData(): Promise<Doc | null>;
  writeSessionData(data: Doc, when: Date): Promise<void>;
  dispose(): void;
}

/**
 * backtest-kit 20.x's per-signal key/value map (contract §8): one snapshot per
 * (signalId, dictionaryName), every write replacing it whole.
 */
export interface IPersistDictionaryInstance {
  waitForInit(initial: boolean): Promise<void>;
  readDictionaryData(): Promise<Doc | null>;
  writeDictionaryData(data: Doc, when: Date): Promise<void>;
  dispose(): void;
}

/** The instance classes, by domain name, as `createAdapters()` returns them. */
export interface PersistdAdapters {
  Signal: new (symbol: string, strategyName: string, exchangeName: string) => IPersistSignalInstance;
  Risk: new (riskName: string, exchangeName: string) => IPersistRiskInstance;
  Schedule: new (
    symbol: string,
    strategyName: string,
    exchangeName: string,
  ) => IPersistScheduleInstance;
  Strategy: new (
    symbol: string,
    strategyName: string,
    exchangeName: string,
  ) => IPersistStrategyInstance;
  Partial: new (symbol: string, strategyName: string, exchangeName: string) => IPersistPartialInstance;
  Breakeven: new (
    symbol: string,
    strategyName: string,
    exchangeName: string,
  ) => IPersistBreakevenInstance;
  Candle: new (symbol: string, interval: string, exchangeName: string) => IPersistCandleInstance;
  Storage: new (backtest: boolean) => IPersistStorageInstance;
  Notification: new (backtest: boolean) => IPersistNotificationInstance;
  Log: new () => IPersistLogInstance;
  Measure: new (bucket: string) => IPersistMeasureInstance;
  Interval: new (bucket: string) => IPersistIntervalInstance;
  Memory: new (signalId: string, bucketName: string) => IPersistMemoryInstance;
  Recent: new (
    symbol: string,
    strategyName: string,
    exchangeName: string,
    frameName: string,
    backtest: boolean,
  ) => IPersistRecentInstance;
  State: new (signalId: string, bucketName: string) => IPersistStateInstance;
  Session: new (
    strategyName: string,
    exchangeName: string,
    frameName: string,
    symbol: string,
    backtest: boolean,
  ) => IPersistSessionInstance;
  /** backtest-kit 20.x only: `setup()` registers it when the installed backtest-kit has it. */
  Dictionary: new (signalId: string, dictionaryName: string) => IPersistDictionaryInstance;
}

/** A domain name: `Signal`, `Risk`, ... (the keys of `PersistdAdapters`). */
export type DomainName = keyof PersistdAdapters;

export const DOMAIN_NAMES: readonly DomainName[] = [
  "Signal",
  "Risk",
  "Schedule",
  "Strategy",
  "Partial",
  "Breakeven",
  "Candle",
  "Storage",
  "Notification",
  "Log",
  "Measure",
  "Interval",
  "Memory",
  "Recent",
  "State",
  "Session",
  "Dictionary",
];

/** Domains a backtest-kit may lack (20.x added them): `setup()` skips them there, silently. */
export const OPTIONAL_DOMAIN_NAMES: readonly DomainName[] = ["Dictionary"];
