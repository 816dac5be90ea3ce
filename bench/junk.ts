/**
 * Junk datagrams for the flood benchmark, written back to back into one file
 * that bench/flood.py sends. Every kind is JUNK_SIZE bytes, over the 800-byte
 * capture threshold, so all of it reaches the server's JavaScript.
 */
import { createECDH, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { knockTargetOf, v2Mac1 } from '../client-lib/protocol/crypto.js';

export const JUNK_SIZE = 800;
const V2_HEADER = Buffer.from([0x73, 0x4b, 0x02, 0x01]);
const MAC1_LENGTH = 16;

/**
 * blind-random: random bytes; blind-header: a valid-looking v2 header then
 * random bytes (both stop at the mac1 check); informed: what someone with the
 * server certificate can make: valid header, a valid and distinct curve point
 * per packet, random ciphertext and a correct mac1, so each one costs an ECDH.
 */
export type JunkKind = 'blind-random' | 'blind-header' | 'informed';

export function junkPackets(kind: JunkKind, count: number, serverCertificateDer: Buffer): Buffer[] {
  const mac1Key = knockTargetOf(serverCertificateDer).mac1Key;
  const packets: Buffer[] = [];
  for (let index = 0; index < count; index += 1) {
    const packet = randomBytes(JUNK_SIZE);
    if (kind !== 'blind-random') V2_HEADER.copy(packet, 0);
    if (kind === 'informed') {
      const ephemeral = createECDH('prime256v1');
      ephemeral.generateKeys();
      ephemeral.getPublicKey().copy(packet, V2_HEADER.length);
      v2Mac1(mac1Key, packet.subarray(0, JUNK_SIZE - MAC1_LENGTH)).copy(packet, JUNK_SIZE - MAC1_LENGTH);
    }
    packets.push(packet);
  }
  return packets;
}

export function writeJunk(file: string, kind: JunkKind, count: number, serverCertificateDer: Buffer): void {
  writeFileSync(file, Buffer.concat(junkPackets(kind, count, serverCertificateDer)));
}
