// How tests/layouts/bullmq-*.keys was made: `npm install bullmq@5` in an empty folder,
// then PORT=<scratch redis-server> node capture_bullmq.js (db 2 is flushed first).
// Each line: phase (busy: a job running; idle: all done), key, type, "ttl" or "none".
const { Queue, Worker, FlowProducer } = require('bullmq');
const IORedis = require('ioredis');
const connection = { host: '127.0.0.1', port: Number(process.env.PORT || 6391), db: 2 };
(async () => {
  const r = new IORedis({ ...connection, maxRetriesPerRequest: null });
  await r.flushdb();
  const q = new Queue('emails', { connection });
  await q.add('slow', { ms: 3000 });
  await q.add('send', { to: 'a' });
  await q.add('later', { to: 'b' }, { delay: 3600000 });
  await q.add('urgent', { to: 'c' }, { priority: 5 });
  await q.add('fail', { to: 'd' }, { attempts: 1 });
  await q.add('dedup', { to: 'e' }, { deduplication: { id: 'x1', ttl: 600000 } });
  await q.upsertJobScheduler('every-hour', { every: 3600000 }, { name: 'tick' });
  const paused = new Queue('reports', { connection });
  await paused.pause();
  await paused.add('monthly', {});
  const flow = new FlowProducer({ connection });
  await flow.add({ name: 'parent', queueName: 'exports', children: [{ name: 'child', queueName: 'emails', data: {} }] });
  const w = new Worker('emails', async job => {
    if (job.name === 'fail') throw new Error('boom');
    if (job.name === 'slow') await new Promise(res => setTimeout(res, job.data.ms));
    await job.log('done');
    return 1;
  }, { connection, concurrency: 1, metrics: { maxDataPoints: 10 } });
  const dump = async label => {
    const keys = (await r.keys('*')).sort();
    for (const k of keys) console.log(label, k, await r.type(k), (await r.pttl(k)) === -1 ? 'none' : 'ttl');
  };
  await new Promise(res => setTimeout(res, 1000));
  await dump('busy');
  await new Promise(res => setTimeout(res, 4000));
  await dump('idle');
  await w.close(); await q.close(); await paused.close(); await flow.close(); r.disconnect();
})();
