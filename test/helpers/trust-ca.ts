/** Making this process trust a test certificate authority, for SDKs that take no CA option. */
import { getCACertificates, setDefaultCACertificates } from 'node:tls';

/**
 * Make this process trust `cert` (PEM) for TLS, besides the CAs it trusts already, as NODE_EXTRA_CA_CERTS
 * would at startup (tls.setDefaultCACertificates, in the Node 24 this repo runs on). Every later TLS
 * connection that names no CA of its own (node:https agents, node-fetch) is affected. Returns a function
 * restoring the previous set.
 */
export function trustCertificate(cert: string): () => void {
  const previous = getCACertificates('default');
  setDefaultCACertificates([...previous, cert]);
  return () => setDefaultCACertificates(previous);
}
