/**
 * The ICMP a host needs to keep working behind a closed policy: ping, error
 * reports (path MTU discovery needs packet-too-big / fragmentation-needed),
 * and on IPv6 neighbour discovery and multicast listener messages, without
 * which the host cannot even resolve its neighbours' link addresses.
 * `name` is nftables' keyword; iptables takes `type`.
 */
export interface IcmpType {
  readonly type: number;
  readonly name: string;
}

export const ESSENTIAL_ICMP: readonly IcmpType[] = [
  { type: 0, name: 'echo-reply' },
  { type: 3, name: 'destination-unreachable' },
  { type: 8, name: 'echo-request' },
  { type: 11, name: 'time-exceeded' },
  { type: 12, name: 'parameter-problem' },
];

export const ESSENTIAL_ICMPV6: readonly IcmpType[] = [
  { type: 1, name: 'destination-unreachable' },
  { type: 2, name: 'packet-too-big' },
  { type: 3, name: 'time-exceeded' },
  { type: 4, name: 'parameter-problem' },
  { type: 128, name: 'echo-request' },
  { type: 129, name: 'echo-reply' },
  { type: 130, name: 'mld-listener-query' },
  { type: 131, name: 'mld-listener-report' },
  { type: 132, name: 'mld-listener-done' },
  { type: 133, name: 'nd-router-solicit' },
  { type: 134, name: 'nd-router-advert' },
  { type: 135, name: 'nd-neighbor-solicit' },
  { type: 136, name: 'nd-neighbor-advert' },
  { type: 143, name: 'mld2-listener-report' },
];
