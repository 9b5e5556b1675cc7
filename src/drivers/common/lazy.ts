/**
 * A driver whose protocol module is loaded on first use (start or readOnce) instead of when the
 * registry is imported. node-opcua costs ~1.6 s of start-up and ~100 MiB of resident memory on our
 * 2-core machines: a gateway without an OPC UA device should pay neither. The wrapper validates the
 * device map synchronously (the registry's rule: a bad map is reported before anything starts), then
 * behaves as the driver it loads: start() still resolves at once (loading continues in the
 * background), stop() resolves promptly even while the module is loading, and nothing is emitted
 * after it resolves.
 *
 * @example
 *   opcua: lazyFactory('opcua', validateOpcuaDevice, () => import('./opcua/driver.ts').then((m) => m.createOpcuaDriver)),
 */
import type {
  Driver,
  DriverContext,
  DriverFactory,
  DriverHealth,
  OnceOptions,
  OnceResult,
} from '../types.ts';
import { errorMessage } from './lifecycle.ts';

export function lazyFactory<D extends { id: string }>(
  protocol: string,
  validate: (device: D) => void,
  load: () => Promise<DriverFactory<D>>,
): DriverFactory<D> {
  return (device, ctx) => {
    validate(device);
    return new LazyDriver(device.id, protocol, async () => (await load())(device, ctx), ctx);
  };
}

class LazyDriver implements Driver {
  readonly device: string;
  readonly protocol: string;
  readonly #load: () => Promise<Driver>;
  readonly #ctx: DriverContext;
  #loaded: Promise<Driver | null> | null = null;
  #inner: Driver | null = null;
  #running = false;
  /** Bumped by every start() and stop(): a load finishing late starts nothing stale. */
  #generation = 0;
  #state: unknown;
  #loadError: string | undefined;

  constructor(device: string, protocol: string, load: () => Promise<Driver>, ctx: DriverContext) {
    this.device = device;
    this.protocol = protocol;
    this.#load = load;
    this.#ctx = ctx;
  }

  /** Loads the module and builds the driver, once. Null (logged, in health) if the module fails to load. */
  #loadOnce(): Promise<Driver | null> {
    this.#loaded ??= this.#load().then(
      (inner) => {
        this.#inner = inner;
        if (this.#state !== undefined) inner.loadState?.(this.#state);
        return inner;
      },
      (err: unknown) => {
        this.#loadError = `cannot load the ${this.protocol} driver: ${errorMessage(err)}`;
        this.#ctx.log.error(this.#loadError, { device: this.device });
        return null;
      },
    );
    return this.#loaded;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const generation = ++this.#generation;
    void this.#loadOnce().then((inner) => {
      // stop() may have come first: then the loaded driver is not started.
      if (inner && this.#running && generation === this.#generation) return inner.start();
    });
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#generation++;
    await this.#inner?.stop();
  }

  health(): DriverHealth {
    if (this.#inner) return this.#inner.health();
    const h: DriverHealth = {
      device: this.device,
      protocol: this.protocol,
      state: this.#running ? 'connecting' : 'stopped',
      lastGoodReadMs: null,
      readings: 0,
      errors: this.#loadError ? { load: 1 } : {},
      reconnects: 0,
    };
    if (this.#loadError) h.lastError = this.#loadError;
    return h;
  }

  async readOnce(options: OnceOptions): Promise<OnceResult> {
    if (this.#running) throw new Error(`device ${this.device}: readOnce needs a driver that is not running`);
    const inner = await this.#loadOnce();
    if (inner) return inner.readOnce(options);
    return {
      device: this.device,
      protocol: this.protocol,
      batches: [],
      complete: false,
      problems: [this.#loadError ?? `cannot load the ${this.protocol} driver`],
      notes: [],
      silent: [],
      elapsedMs: 0,
    };
  }

  saveState(): unknown {
    return this.#inner ? this.#inner.saveState?.() : this.#state;
  }

  loadState(state: unknown): void {
    this.#state = state;
    this.#inner?.loadState?.(state);
  }
}
