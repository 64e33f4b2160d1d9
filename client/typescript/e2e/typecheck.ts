// Compile-time check (tsc --strict --noEmit): the 16 classes fit backtest-kit 19.5.0's own
// registration hooks and each instance is its IPersist*Instance, setup()'s options are typed,
// and PersistBase fits its IPersistBase.

import {
  PersistBreakevenAdapter,
  PersistCandleAdapter,
  PersistIntervalAdapter,
  PersistLogAdapter,
  PersistMeasureAdapter,
  PersistMemoryAdapter,
  PersistNotificationAdapter,
  PersistPartialAdapter,
  PersistRecentAdapter,
  PersistRiskAdapter,
  PersistScheduleAdapter,
  PersistSessionAdapter,
  PersistSignalAdapter,
  PersistStateAdapter,
  PersistStorageAdapter,
  PersistStrategyAdapter,
  type IPersistBase,
  type IPersistBreakevenInstance,
  type IPersistCandleInstance,
  type IPersistIntervalInstance,
  type IPersistLogInstance,
  type IPersistMeasureInstance,
  type IPersistMemoryInstance,
  type IPersistNotificationInstance,
  type IPersistPartialInstance,
  type IPersistRecentInstance,
  type IPersistRiskInstance,
  type IPersistScheduleInstance,
  type IPersistSessionInstance,
  type IPersistSignalInstance,
  type IPersistStateInstance,
  type IPersistStorageInstance,
  type IPersistStrategyInstance,
} from "backtest-kit";
import { createAdapters, PersistBase, setup, type PersistdAdapters } from "persistd-backtest-kit";

const A: PersistdAdapters = createAdapters({ url: "http://127.0.0.1:1", namespace: "types" });

PersistSignalAdapter.usePersistSignalAdapter(A.Signal);
PersistRiskAdapter.usePersistRiskAdapter(A.Risk);
PersistScheduleAdapter.usePersistScheduleAdapter(A.Schedule);
PersistStrategyAdapter.usePersistStrategyAdapter(A.Strategy);
PersistPartialAdapter.usePersistPartialAdapter(A.Partial);
PersistBreakevenAdapter.usePersistBreakevenAdapter(A.Breakeven);
PersistCandleAdapter.usePersistCandleAdapter(A.Candle);
PersistStorageAdapter.usePersistStorageAdapter(A.Storage);
PersistNotificationAdapter.usePersistNotificationAdapter(A.Notification);
PersistLogAdapter.usePersistLogAdapter(A.Log);
PersistMeasureAdapter.usePersistMeasureAdapter(A.Measure);
PersistIntervalAdapter.usePersistIntervalAdapter(A.Interval);
PersistMemoryAdapter.usePersistMemoryAdapter(A.Memory);
PersistRecentAdapter.usePersistRecentAdapter(A.Recent);
PersistStateAdapter.usePersistStateAdapter(A.State);
PersistSessionAdapter.usePersistSessionAdapter(A.Session);

// Each generated class's instances, as backtest-kit's own instance types.
export const instances: [
  IPersistSignalInstance,
  IPersistRiskInstance,
  IPersistScheduleInstance,
  IPersistStrategyInstance,
  IPersistPartialInstance,
  IPersistBreakevenInstance,
  IPersistCandleInstance,
  IPersistStorageInstance,
  IPersistNotificationInstance,
  IPersistLogInstance,
  IPersistMeasureInstance,
  IPersistIntervalInstance,
  IPersistMemoryInstance,
  IPersistRecentInstance,
  IPersistStateInstance,
  IPersistSessionInstance,
] = [
  new A.Signal("BTCUSDT", "s", "e"),
  new A.Risk("r", "e"),
  new A.Schedule("BTCUSDT", "s", "e"),
  new A.Strategy("BTCUSDT", "s", "e"),
  new A.Partial("BTCUSDT", "s", "e"),
  new A.Breakeven("BTCUSDT", "s", "e"),
  new A.Candle("BTCUSDT", "1m", "e"),
  new A.Storage(false),
  new A.Notification(false),
  new A.Log(),
  new A.Measure("b"),
  new A.Interval("b"),
  new A.Memory("sig", "b"),
  new A.Recent("BTCUSDT", "s", "e", "", false),
  new A.State("sig", "b"),
  new A.Session("s", "e", "", "BTCUSDT", false),
];

const base: IPersistBase<any> = new PersistBase("BTCUSDT_s_e", "./dump/data/signal/");
void base;
export const configured = () => setup({ url: "http://127.0.0.1:1", optIn: { storage: true, notifications: true } });
// @ts-expect-error: an opt-in backtest-kit does not have is refused
export const misspelt = () => setup({ optIn: { notification: true } });
