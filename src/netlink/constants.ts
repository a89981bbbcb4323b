// Protocol numbers of netlink, nfnetlink and nf_tables (include/uapi/linux/netfilter/nf_tables.h, nfnetlink.h).
// Numbers only: no encoding logic lives here, and nothing here touches a socket.

export const NETLINK_NETFILTER = 12;

/** nlmsghdr flags (host byte order in the header). */
export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  // GET modifiers
  ROOT: 0x100,
  MATCH: 0x200,
  DUMP: 0x300,
  // NEW modifiers
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  // DELETE modifier
  NONREC: 0x100,
} as const;

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 16;
export const NFNL_MSG_BATCH_END = 17;
/** NFNL_BATCH_GENID: u32, network byte order, inside the batch-begin message. */
export const NFNL_BATCH_GENID = 1;
export const NFNETLINK_V0 = 0;

/** nf_tables message types; on the wire they are (NFNL_SUBSYS_NFTABLES << 8) | type. */
export const NFT_MSG = {
  NEWTABLE: 0,
  GETTABLE: 1,
  DELTABLE: 2,
  NEWCHAIN: 3,
  GETCHAIN: 4,
  DELCHAIN: 5,
  NEWRULE: 6,
  GETRULE: 7,
  DELRULE: 8,
  NEWSET: 9,
  GETSET: 10,
  DELSET: 11,
  NEWSETELEM: 12,
  GETSETELEM: 13,
  DELSETELEM: 14,
  NEWGEN: 15,
  GETGEN: 16,
  TRACE: 17,
  NEWOBJ: 18,
  GETOBJ: 19,
  DELOBJ: 20,
} as const;

const msgNames: Record<number, string> = Object.fromEntries(Object.entries(NFT_MSG).map(([k, v]) => [v, k]));

/** Human name of a full nfnetlink message type, e.g. 0x0a09 -> "NEWSET". */
export function messageTypeName(type: number): string {
  if (type === NFNL_MSG_BATCH_BEGIN) return 'BATCH_BEGIN';
  if (type === NFNL_MSG_BATCH_END) return 'BATCH_END';
  if (type < 16) return ['', 'NOOP', 'ERROR', 'DONE', 'OVERRUN'][type] ?? `control(${type})`;
  if (type >> 8 === NFNL_SUBSYS_NFTABLES) return msgNames[type & 0xff] ?? `nft(${type & 0xff})`;
  if (type >> 8 === NFNL_SUBSYS_CTNETLINK)
    return ['CT_NEW', 'CT_GET', 'CT_DELETE'][type & 0xff] ?? `ctnetlink(${type & 0xff})`;
  if (type >> 8 === NFNL_SUBSYS_ULOG)
    return ['ULOG_PACKET', 'ULOG_CONFIG'][type & 0xff] ?? `ulog(${type & 0xff})`;
  return `type(${type})`;
}

export function nftType(msg: number): number {
  return (NFNL_SUBSYS_NFTABLES << 8) | msg;
}

/** NFPROTO_* values carried in nfgenmsg.nfgen_family. */
export const NFPROTO = { UNSPEC: 0, INET: 1, IPV4: 2, ARP: 3, NETDEV: 5, BRIDGE: 7, IPV6: 10 } as const;

export const NFTA_LIST_ELEM = 1;
export const NFTA_TABLE = { NAME: 1, FLAGS: 2, USE: 3, HANDLE: 4, USERDATA: 6 } as const;
export const NFTA_HOOK = { HOOKNUM: 1, PRIORITY: 2, DEV: 3 } as const;
export const NFTA_CHAIN = {
  TABLE: 1,
  HANDLE: 2,
  NAME: 3,
  HOOK: 4,
  POLICY: 5,
  USE: 6,
  TYPE: 7,
  COUNTERS: 8,
  FLAGS: 10,
  ID: 11,
  USERDATA: 12,
} as const;
/** Stateful objects (NFT_MSG_NEWOBJ...): enum nft_object_attributes; NFTA_OBJ_DATA holds the type's own. */
export const NFTA_OBJ = { TABLE: 1, NAME: 2, TYPE: 3, DATA: 4, USE: 5, HANDLE: 6, USERDATA: 8 } as const;
export const NFT_OBJECT = { COUNTER: 1, QUOTA: 2, LIMIT: 4 } as const;
export const NFTA_RULE = {
  TABLE: 1,
  CHAIN: 2,
  HANDLE: 3,
  EXPRESSIONS: 4,
  POSITION: 6,
  USERDATA: 7,
  ID: 9,
} as const;
export const NFTA_SET = {
  TABLE: 1,
  NAME: 2,
  FLAGS: 3,
  KEY_TYPE: 4,
  KEY_LEN: 5,
  DATA_TYPE: 6,
  DATA_LEN: 7,
  POLICY: 8,
  DESC: 9,
  ID: 10,
  TIMEOUT: 11,
  GC_INTERVAL: 12,
  USERDATA: 13,
  HANDLE: 16,
} as const;
export const NFTA_SET_DESC = { SIZE: 1, CONCAT: 2 } as const;
export const NFTA_SET_FIELD_LEN = 1;
export const NFT_SET_F = {
  ANONYMOUS: 0x1,
  CONSTANT: 0x2,
  INTERVAL: 0x4,
  MAP: 0x8,
  TIMEOUT: 0x10,
  EVAL: 0x20,
  OBJECT: 0x40,
  CONCAT: 0x80,
} as const;
export const NFTA_SET_ELEM = {
  KEY: 1,
  DATA: 2,
  FLAGS: 3,
  TIMEOUT: 4,
  EXPIRATION: 5,
  USERDATA: 6,
  KEY_END: 10,
} as const;
export const NFT_SET_ELEM_INTERVAL_END = 0x1;
export const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3, SET_ID: 4 } as const;
export const NFTA_DATA = { VALUE: 1, VERDICT: 2 } as const;
export const NFTA_VERDICT = { CODE: 1, CHAIN: 2 } as const;
export const NFT_DATA_VERDICT = 0xffffff00;
export const NFTA_EXPR = { NAME: 1, DATA: 2 } as const;
export const NFTA_GEN_ID = 1;
/** NFT_MSG_NEWGEN notifications: the committing process (enum nft_gen_attributes). */
export const NFTA_GEN = { ID: 1, PROC_PID: 2, PROC_NAME: 3 } as const;
/** The nfnetlink multicast group of nf_tables change notifications (enum nfnetlink_groups). */
export const NFNLGRP_NFTABLES = 7;
/** Attribute 1 of every nf_tables object message (table, chain, rule, set, element list, object,
 *  flowtable) is the name of the table it belongs to (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, ...). */
export const NFTA_ANY_TABLE = 1;

/** Verdict codes (NF_DROP, NF_ACCEPT and enum nft_verdicts), a signed 32-bit big-endian value on the wire. */
export const VERDICT_CODE = {
  drop: 0,
  accept: 1,
  continue: -1,
  break: -2,
  jump: -3,
  goto: -4,
  return: -5,
} as const;

export const NFT_REG_VERDICT = 0;

/** nfnetlink_log (NFLOG), include/uapi/linux/netfilter/nfnetlink_log.h: messages are (SUBSYS_ULOG << 8) | type,
 *  and nfgenmsg.res_id carries the group number (big-endian). */
export const NFNL_SUBSYS_ULOG = 4;
export const NFULNL_MSG = { PACKET: 0, CONFIG: 1 } as const;
/** Attributes of an NFULNL_MSG_PACKET (enum nfulnl_attr_type). */
export const NFULA = {
  PACKET_HDR: 1,
  MARK: 2,
  TIMESTAMP: 3,
  IFINDEX_INDEV: 4,
  IFINDEX_OUTDEV: 5,
  IFINDEX_PHYSINDEV: 6,
  IFINDEX_PHYSOUTDEV: 7,
  HWADDR: 8,
  PAYLOAD: 9,
  PREFIX: 10,
  UID: 11,
  SEQ: 12,
  SEQ_GLOBAL: 13,
  GID: 14,
  HWTYPE: 15,
  HWHEADER: 16,
  HWLEN: 17,
  CT: 18,
  CT_INFO: 19,
  VLAN: 20,
  L2HDR: 21,
} as const;
/** Attributes of an NFULNL_MSG_CONFIG (enum nfulnl_attr_config). */
export const NFULA_CFG = { CMD: 1, MODE: 2, NLBUFSIZ: 3, TIMEOUT: 4, QTHRESH: 5, FLAGS: 6 } as const;
export const NFULNL_CFG_CMD = { NONE: 0, BIND: 1, UNBIND: 2, PF_BIND: 3, PF_UNBIND: 4 } as const;
export const NFULNL_COPY = { NONE: 0, META: 1, PACKET: 2 } as const;
/** NFULA_CFG_FLAGS (u16 big-endian): per-instance and global sequence numbers in every packet message. */
export const NFULNL_CFG_F = { SEQ: 0x1, SEQ_GLOBAL: 0x2, CONNTRACK: 0x4 } as const;

export function ulogType(msg: number): number {
  return (NFNL_SUBSYS_ULOG << 8) | msg;
}

/** ctnetlink (nf_conntrack_netlink), include/uapi/linux/netfilter/nfnetlink_conntrack.h: messages are
 *  (SUBSYS_CTNETLINK << 8) | type, and nfgenmsg.nfgen_family is the entry's L3 family (UNSPEC: all). */
export const NFNL_SUBSYS_CTNETLINK = 1;
/** enum cntl_msg_types (the ones we send; NEW is also what a dump answers with). */
export const IPCTNL_MSG = { CT_NEW: 0, CT_GET: 1, CT_DELETE: 2 } as const;
/** Top-level attributes of a conntrack entry (enum ctattr_type, the ones we read or write). */
export const CTA = {
  TUPLE_ORIG: 1,
  TUPLE_REPLY: 2,
  STATUS: 3,
  PROTOINFO: 4,
  TIMEOUT: 7,
  MARK: 8,
  USE: 11,
  ID: 12,
  ZONE: 18,
} as const;
/** Inside CTA_TUPLE_* (enum ctattr_tuple). */
export const CTA_TUPLE = { IP: 1, PROTO: 2, ZONE: 3 } as const;
/** Inside CTA_TUPLE_IP (enum ctattr_ip): addresses in network byte order. */
export const CTA_IP = { V4_SRC: 1, V4_DST: 2, V6_SRC: 3, V6_DST: 4 } as const;
/** Inside CTA_TUPLE_PROTO (enum ctattr_l4proto): ports u16 big-endian, ICMP id/type/code. */
export const CTA_PROTO = {
  NUM: 1,
  SRC_PORT: 2,
  DST_PORT: 3,
  ICMP_ID: 4,
  ICMP_TYPE: 5,
  ICMP_CODE: 6,
  ICMPV6_ID: 7,
  ICMPV6_TYPE: 8,
  ICMPV6_CODE: 9,
} as const;
/** CTA_PROTOINFO > CTA_PROTOINFO_TCP > CTA_PROTOINFO_TCP_STATE (u8). */
export const CTA_PROTOINFO = { TCP: 1 } as const;
export const CTA_PROTOINFO_TCP = { STATE: 1 } as const;
/** enum tcp_conntrack (linux/netfilter/nf_conntrack_tcp.h); 9 is SYN_SENT2 (formerly LISTEN). */
export const TCP_CONNTRACK_STATES = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
] as const;
/** Bits of CTA_STATUS (enum ip_conntrack_status, linux/netfilter/nf_conntrack_common.h). */
export const IPS = { EXPECTED: 0x1, SEEN_REPLY: 0x2, ASSURED: 0x4, CONFIRMED: 0x8 } as const;

export function ctnlType(msg: number): number {
  return (NFNL_SUBSYS_CTNETLINK << 8) | msg;
}
