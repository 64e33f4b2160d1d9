// Compile-time check (tsc --strict --noEmit): the 16 classes fit backtest-kit 19.5.0's own
// registration hooks, and PersistBase fits its IPersistBase.

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

const base: IPersistBase<any> = new PersistBase("BTCUSDT_s_e", "./dump/data/signal/");
void base;
void setup;
