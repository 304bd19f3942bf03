//! The in-memory client cache behind the token endpoint.
//!
//! Every replica keeps all clients in memory (the token path must not wait
//! on the database). Changes reach it two ways: a client id not in the
//! cache is looked up in the database at once (so a client created by the
//! CLI works on its first request), and every change to the clients table
//! bumps `cache_epochs.clients`, which each replica polls (every second by
//! default) and answers by reloading the table. So a deleted client or a
//! rotated secret stops working everywhere within one poll interval.
//!
//! The APIs (resource servers and their scopes) live here too, reloaded
//! with the clients (their changes bump the same epoch): the
//! client-credentials path decides a token's scope and `aud` from memory.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::domain::{ApiCatalogue, Client, ClientId};
use crate::store::{self, Store};

type ClientMap = HashMap<ClientId, Arc<Client>>;

/// The API catalogue and when its read started: of two reads, the one that
/// started later has seen every change committed before it started, so it
/// replaces the other and never the reverse.
struct Catalogue {
    read: u64,
    apis: Arc<ApiCatalogue>,
}

pub struct ClientRegistry {
    store: Arc<dyn Store>,
    clients: ArcSwap<ClientMap>,
    apis: ArcSwap<Catalogue>,
    /// Numbers the API reads, in the order they start.
    api_reads: AtomicU64,
    /// Bumped when a reload starts. A client read from the database on a
    /// cache miss is only added if no reload started meanwhile: otherwise a
    /// client deleted between that read and the reload could be put back
    /// and outlive its deletion.
    generation: AtomicU64,
    /// Ids looked up in the database and not found, until the next reload.
    /// Client ids are random UUIDs minted at registration, so an id cannot
    /// be asked for before it exists: remembering a miss until the next
    /// reload never hides a new client, and a flood of made-up ids costs
    /// one query each instead of one per request.
    misses: Mutex<HashSet<ClientId>>,
}

/// Bound on remembered misses (then the set starts over).
const MAX_MISSES: usize = 10_000;

impl ClientRegistry {
    pub async fn load(store: Arc<dyn Store>) -> Result<Self, store::Error> {
        let registry = Self {
            store,
            clients: ArcSwap::from_pointee(ClientMap::new()),
            apis: ArcSwap::from_pointee(Catalogue {
                read: 0,
                apis: Arc::default(),
            }),
            api_reads: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            misses: Mutex::new(HashSet::new()),
        };
        registry.reload().await?;
        Ok(registry)
    }

    #[tracing::instrument(level = "debug", name = "clients.reload", skip_all)]
    pub async fn reload(&self) -> Result<(), store::Error> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let clients: ClientMap = self
            .store
            .list_clients()
            .await?
            .into_iter()
            .map(|client| (client.id.clone(), Arc::new(client)))
            .collect();
        self.read_apis().await?;
        tracing::debug!(clients = clients.len(), "client cache loaded");
        // The APIs first: a client in the map always finds the APIs that
        // existed when it was read.
        self.clients.store(Arc::new(clients));
        self.misses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }

    /// The client with this id: from memory, or from the database if it
    /// is newer than the cache.
    pub async fn find(&self, id: &ClientId) -> Result<Option<Arc<Client>>, store::Error> {
        if let Some(client) = self.clients.load().get(id) {
            return Ok(Some(client.clone()));
        }
        if self
            .misses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
        {
            return Ok(None);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(client) = self.store.find_client(id).await? else {
            let mut misses = self.misses.lock().unwrap_or_else(|p| p.into_inner());
            if misses.len() >= MAX_MISSES {
                misses.clear();
            }
            if self.generation.load(Ordering::SeqCst) == generation {
                misses.insert(id.clone());
            }
            return Ok(None);
        };
        // A client registered a moment ago may hold scopes of an API
        // created just before it: the catalogue is read again rather than
        // leaving those scopes ungranted until the next poll.
        let unknown_scope = {
            let apis = self.apis.load();
            client.scope.iter().any(|scope| {
                !crate::domain::scope::IDENTITY_SCOPES.contains(&scope)
                    && apis.apis.api_of(scope).is_none()
            })
        };
        if unknown_scope {
            self.read_apis().await?;
        }
        let client = Arc::new(client);
        self.clients.rcu(|clients| {
            let mut clients = ClientMap::clone(clients);
            if self.generation.load(Ordering::SeqCst) == generation {
                clients.insert(client.id.clone(), client.clone());
            }
            clients
        });
        Ok(Some(client))
    }

    /// Whether some client registered `origin` (`--allowed-origin`). A scan
    /// of the cached clients: thousands cost microseconds.
    pub fn origin_registered(&self, origin: &str) -> bool {
        self.clients
            .load()
            .values()
            .any(|c| c.allowed_origins.iter().any(|o| o == origin))
    }

    /// Whether the client with this id registered `origin`.
    pub fn origin_allowed_for(&self, client_id: &str, origin: &str) -> bool {
        let Some(id) = ClientId::parse(client_id) else {
            return false;
        };
        self.clients
            .load()
            .get(&id)
            .is_some_and(|c| c.allowed_origins.iter().any(|o| o == origin))
    }

    /// Every API, as of the latest read.
    pub fn apis(&self) -> Arc<ApiCatalogue> {
        self.apis.load().apis.clone()
    }

    /// Reads the APIs and keeps them unless a read that started later was
    /// kept already.
    async fn read_apis(&self) -> Result<(), store::Error> {
        let read = self.api_reads.fetch_add(1, Ordering::SeqCst) + 1;
        let apis = Arc::new(Catalogue {
            read,
            apis: Arc::new(ApiCatalogue::new(self.store.list_apis().await?)),
        });
        self.apis.rcu(|current| {
            if current.read < read {
                apis.clone()
            } else {
                current.clone()
            }
        });
        Ok(())
    }

    /// Every scope an API defines (for discovery).
    /// The scopes discovery advertises (RFC 8414 `scopes_supported`): every
    /// API's, but the admin API's, which are no business of the public.
    pub fn known_scopes(&self) -> BTreeSet<String> {
        self.apis
            .load()
            .apis
            .iter()
            .filter(|api| api.identifier.as_str() != crate::domain::api::ADMIN_API)
            .flat_map(|api| {
                api.scopes
                    .iter()
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
