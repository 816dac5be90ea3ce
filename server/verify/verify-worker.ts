/**
 * A verification worker thread: examines the batches the pool sends, with
 * its own Examiner (server context, trust state, caches). Started by
 * worker-pool.ts with ExaminerOptions as workerData.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Examiner, reviveExaminerOptions, reviveTrustOptions, type ExaminerOptions } from './examiner.js';
import { unpackKnocks, type FromWorker, type ToWorker } from './worker-messages.js';

if (parentPort === null) throw new Error('verify-worker.js runs as a worker thread of the verification pool');
const port = parentPort;
const examiner = new Examiner(reviveExaminerOptions(workerData as ExaminerOptions));

function reply(message: FromWorker): void {
  port.postMessage(message);
}

port.on('message', (message: ToWorker) => {
  switch (message.kind) {
    case 'examine':
      reply({ kind: 'examined', batchId: message.batchId, examinations: examiner.examine(unpackKnocks(message.knocks)) });
      return;
    case 'trust':
      try {
        examiner.updateTrust(reviveTrustOptions(message.trust));
        reply({ kind: 'trust-applied', requestId: message.requestId });
      } catch (error) {
        reply({ kind: 'trust-failed', requestId: message.requestId, message: error instanceof Error ? error.message : String(error) });
      }
      return;
  }
});
