import * as hdr from "hdr-histogram-js";

/** Latency histogram recording microseconds (1 µs .. 60 s, 3 significant digits). */
export type Hist = hdr.Histogram;

export function newHist(): Hist {
  return hdr.build({
    bitBucketSize: 64,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

/** Records a duration given in milliseconds (performance.now() differences). */
export function recordMs(h: Hist, ms: number): void {
  h.recordValue(Math.min(60_000_000, Math.max(1, Math.round(ms * 1000))));
}

/** What a report row carries: milliseconds, 3 decimals. */
export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

const ms = (us: number) => Math.round(us) / 1000;

export function summarize(h: Hist): Summary {
  if (h.totalCount === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/** One histogram per key, created on first use. */
export class Hists {
  private map = new Map<string, Hist>();
  get(key: string): Hist {
    let h = this.map.get(key);
    if (!h) this.map.set(key, (h = newHist()));
    return h;
  }
  summary(key: string): Summary {
    return summarize(this.get(key));
  }
}
