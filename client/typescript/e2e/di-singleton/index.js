"use strict";
// singleton(Class): every `new` returns one shared instance, created on first use;
// its init() (if any) runs once. backtest-kit imports this only for its logger.
function singleton(Target) {
  let instance = null;
  function Singleton(...args) {
    if (instance === null) {
      instance = Reflect.construct(Target, args);
      if (typeof instance.init === "function") instance.init();
    }
    return instance;
  }
  Singleton.prototype = Target.prototype;
  Object.setPrototypeOf(Singleton, Target);
  return Singleton;
}
exports.singleton = singleton;
exports.default = { singleton };
