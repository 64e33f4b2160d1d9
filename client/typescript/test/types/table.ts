// Negative type tests (tsc --strict --noEmit, run by test/types.test.mjs): the domain table
// rejects rows that do not fit their backtest-kit contract. Each `@ts-expect-error` fails the
// compile if the line below it ever type-checks.

import type { Row } from "../../src/adapters.js";
import { bucket, candles, document, keyedDocument, risk } from "../../src/kinds.js";
import { addressOf } from "../../src/mapping.js";

// The rows as the table has them compile.
export const signal: Row<"Signal"> = {
  address: addressOf.signal,
  methods: document("readSignalData", "writeSignalData"),
};

export const typo: Row<"Signal"> = {
  address: addressOf.signal,
  // @ts-expect-error: a misspelt method name leaves readSignalData missing
  methods: document("readSignalDta", "writeSignalData"),
};

export const wrongParameters: Row<"Measure"> = {
  address: addressOf.measure,
  methods: {
    ...bucket({
      read: "readMeasureData",
      write: "writeMeasureData",
      remove: "removeMeasureData",
      list: "listMeasureData",
      listEntry: (key) => key,
    }),
    // @ts-expect-error: removeMeasureData takes the key as a string
    removeMeasureData: async function (key: number) {
      void key;
    },
  },
};

export const missingMethod: Row<"Measure"> = {
  address: addressOf.measure,
  // @ts-expect-error: Measure needs listMeasureData too
  methods: { ...document("readMeasureData", "writeMeasureData") },
};

export const wrongAddress: Row<"Risk"> = {
  // @ts-expect-error: Risk is constructed with (riskName, exchangeName), not the signal's three names
  address: addressOf.signal,
  methods: risk,
};

// @ts-expect-error: Candle keeps state (its step and cache), so its row must build it
export const candleWithoutState: Row<"Candle"> = { address: addressOf.candle, methods: candles };

export const partial: Row<"Partial"> = {
  address: addressOf.partial,
  methods: keyedDocument("readPartialData", "writePartialData"),
};

export const interval: Row<"Interval"> = {
  address: addressOf.interval,
  methods: bucket({
    read: "readIntervalData",
    write: "writeIntervalData",
    remove: "removeIntervalData",
    list: "listIntervalData",
    listEntry: (key) => key,
  }),
};
