/**
 * Example: a sensor data source and an analyst.
 *
 * The sensor encrypts one reading per second with public keys only (DataSource: each slice's key
 * is checked against the master key pinned from the JWKS). The analyst asks chronokms for exactly
 * one time slice (a minute with the default 60-s slices, an hour on a version created with 3600),
 * gets a grant, and decrypts exactly that slice: every reading from the slice before is refused
 * with OutsideGrantError, without any decryption being attempted.
 *
 * Time is simulated: the readings are stamped across the two whole slices before the current one
 * (both over: data times in the future are not granted), so the demo runs in about a second.
 *
 *   CHRONOKMS_URL=http://127.0.0.1:3000 CHRONOKMS_READER_KEY=ckms_… bun examples/sensor.ts
 */
import { ChronoKmsClient, DataSource, DataViewer, OutsideGrantError, type Grant } from "chronokms/client";

export interface SensorDemoOptions {
  baseUrl: string;
  /** A key with the reader role, admitted by a whitelist (the analyst's). */
  readerKey: string;
  /** Simulated time between readings (default 1 s). */
  intervalMs?: number;
  /** The current time, for choosing the two past hours (default: now). */
  now?: number;
  sensorId?: string;
  log?: (line: string) => void;
}

export interface SensorDemoResult {
  readings: number;
  grant: Grant;
  /** The readings the analyst could open: exactly those inside the granted hour. */
  decrypted: Array<{ ts: number; celsius: number }>;
  /** Readings outside the grant, each refused with OutsideGrantError. */
  refused: number;
  hour: { start: number; end: number };
}

/** A deterministic, plausible greenhouse temperature for a moment in time. */
const temperatureAt = (ts: number) => Math.round((21 + 3 * Math.sin(ts / 3_600_000)) * 100) / 100;

export async function main(opts: SensorDemoOptions): Promise<SensorDemoResult> {
  const log = opts.log ?? console.log;
  const intervalMs = opts.intervalMs ?? 1000;
  const sensorId = opts.sensorId ?? "greenhouse-1";
  const ctx = `sensor:${sensorId}`;

  // --- the sensor: public keys only ---
  const publicApi = new ChronoKmsClient({ baseUrl: opts.baseUrl });
  // Pinning on first use keeps the demo short; a real device ships with the JWKS it trusts.
  const { keys: masterKeys } = await publicApi.jwks();
  const source = new DataSource({ client: publicApi, masterKeys });
  const sliceSeconds = (await publicApi.slicePublicKey("current")).sliceSeconds;
  const sliceMs = sliceSeconds * 1000;
  const current = Math.floor((opts.now ?? Date.now()) / sliceMs);
  const first = (current - 2) * sliceMs; // two whole slices before the current one
  const records: Array<{ jwe: string; ts: number }> = [];
  for (let ts = first; ts < first + 2 * sliceMs; ts += intervalMs) {
    const reading = JSON.stringify({ sensor: sensorId, ts, celsius: temperatureAt(ts) });
    records.push(await source.encrypt(reading, { ctx, timestamp: ts }));
  }
  log(
    `sensor: encrypted ${records.length} readings from ${iso(first)} to ${iso(first + 2 * sliceMs)} (slices of ${sliceSeconds} s)`,
  );

  // --- the analyst: asks for exactly the second of those slices ---
  const analyst = new ChronoKmsClient({ baseUrl: opts.baseUrl, apiKey: opts.readerKey });
  const hour = { start: first + sliceMs, end: first + 2 * sliceMs };
  // The range is inclusive: its last millisecond is the one before the next slice begins.
  const grant = await analyst.requestAccess({
    resource: { type: "timeslice" },
    timeRange: { start: hour.start, end: hour.end - 1 },
    purpose: "greenhouse temperature report",
  });
  log(
    `analyst: access request ${grant.id} granted slices ${grant.slices.from}..${grant.slices.to}, covering ${grant.covered?.start} to ${grant.covered?.end} (key version ${grant.keyVersion})`,
  );
  const viewer = await DataViewer.fromGrant(grant);
  const decrypted: SensorDemoResult["decrypted"] = [];
  let refused = 0;
  for (const r of records) {
    try {
      const reading = JSON.parse(await viewer.decryptToString(r.jwe, { expectedCtx: ctx })) as {
        ts: number;
        celsius: number;
      };
      decrypted.push({ ts: reading.ts, celsius: reading.celsius });
    } catch (err) {
      if (!(err instanceof OutsideGrantError)) throw err;
      refused++;
    }
  }
  const firstReading = decrypted[0];
  log(
    `analyst: decrypted ${decrypted.length} readings from ${iso(hour.start)} to ${iso(hour.end)}; ${refused} outside the grant refused`,
  );
  if (firstReading) log(`analyst: first reading ${iso(firstReading.ts)} ${firstReading.celsius} °C`);
  return { readings: records.length, grant, decrypted, refused, hour };
}

const iso = (ms: number) => new Date(ms).toISOString();

if (import.meta.main) {
  const baseUrl = process.env.CHRONOKMS_URL ?? "http://127.0.0.1:3000";
  const readerKey = process.env.CHRONOKMS_READER_KEY;
  if (!readerKey) {
    console.error("set CHRONOKMS_READER_KEY to a reader API key (bun run db:seed prints one)");
    process.exit(1);
  }
  await main({ baseUrl, readerKey });
}
