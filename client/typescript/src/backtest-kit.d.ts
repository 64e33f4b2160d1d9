// backtest-kit is a peer dependency and not installed for the build; setup.ts types what it uses.
declare module "backtest-kit";
