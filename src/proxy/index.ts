export { ControllerLink, type ControllerLinkOptions, type LinkTarget } from './link.js';
export { Proxy, type ProxyOptions } from './proxy.js';
export { parseSnapshot, routingSnapshotSchema } from './snapshot.js';
