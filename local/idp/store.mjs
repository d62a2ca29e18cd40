// In-memory storage for one issuer's oidc-provider models (sessions, interactions, codes, tokens,
// grants). One store per issuer, so issuers in the same process share nothing. Bounded: expired
// entries are swept every minute, and when the store is full the oldest entries go first (a load
// test can create many sessions; the default quick-start adapter keeps only 1,000 entries for all
// issuers together, which would drop codes in the middle of a flow).

const GRACE_S = 15;
const GRANT_BOUND = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

export class MemoryStore {
  constructor({ maxEntries = 200_000, now = Date.now } = {}) {
    this.maxEntries = maxEntries;
    this.now = now;
    this.entries = new Map(); // key -> { payload, expiresAt }
    this.byUid = new Map(); // session uid -> key
    this.byUserCode = new Map(); // user code -> key
    this.byGrant = new Map(); // grant id -> Set of keys
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  adapterFor(model) {
    return new ModelAdapter(this, model);
  }

  get(key) {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.now()) {
      this.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key, payload, expiresIn) {
    this.delete(key);
    while (this.entries.size >= this.maxEntries) {
      this.delete(this.entries.keys().next().value);
    }
    // Kept a little past expiry: oidc-provider checks `exp` itself (with its clock tolerance) and
    // needs to see a just-expired or consumed artifact to answer precisely.
    const expiresAt = typeof expiresIn === 'number' ? this.now() + (expiresIn + GRACE_S) * 1000 : undefined;
    this.entries.set(key, { payload, expiresAt });
    if (payload.uid && key.startsWith('Session:')) this.byUid.set(payload.uid, key);
    if (payload.userCode && key.startsWith('DeviceCode:')) this.byUserCode.set(payload.userCode, key);
    if (payload.grantId && GRANT_BOUND.has(key.slice(0, key.indexOf(':')))) {
      let keys = this.byGrant.get(payload.grantId);
      if (!keys) this.byGrant.set(payload.grantId, (keys = new Set()));
      keys.add(key);
    }
  }

  delete(key) {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    const { payload } = entry;
    if (payload.uid && this.byUid.get(payload.uid) === key) this.byUid.delete(payload.uid);
    if (payload.userCode && this.byUserCode.get(payload.userCode) === key) this.byUserCode.delete(payload.userCode);
    const keys = payload.grantId ? this.byGrant.get(payload.grantId) : undefined;
    if (keys) {
      keys.delete(key);
      if (keys.size === 0) this.byGrant.delete(payload.grantId);
    }
  }

  revokeGrant(grantId) {
    for (const key of this.byGrant.get(grantId) ?? []) this.delete(key);
    this.byGrant.delete(grantId);
  }

  sweep() {
    const now = this.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) this.delete(key);
    }
  }

  close() {
    clearInterval(this.sweeper);
  }
}

// The adapter interface oidc-provider calls, one instance per model name.
class ModelAdapter {
  constructor(store, model) {
    this.store = store;
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    this.store.set(this.key(id), payload, expiresIn);
  }

  async find(id) {
    return this.store.get(this.key(id));
  }

  async findByUid(uid) {
    const key = this.store.byUid.get(uid);
    return key ? this.store.get(key) : undefined;
  }

  async findByUserCode(userCode) {
    const key = this.store.byUserCode.get(userCode);
    return key ? this.store.get(key) : undefined;
  }

  async consume(id) {
    const payload = this.store.get(this.key(id));
    if (payload) payload.consumed = Math.floor(this.store.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    this.store.revokeGrant(grantId);
  }
}
