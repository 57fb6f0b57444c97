//! The D-Bus transport: berth owns `dev.berth.Controller1` on the system
//! bus, the session bus or a bus at an address (`--dbus`), serves the
//! interface of the same name at `/dev/berth/Controller1`, and emits
//! `Changed` for every store change.
//!
//! Who may call is the bus policy's to say: on the system bus,
//! `dist/dbus/dev.berth.Controller1.conf` lets root own the name and
//! root and the `berth` group call it; `--require-encryption dbus` narrows
//! that to holders of a key. Every call is audited with the caller's
//! unique name and uid, as the bus reports them.
//!
//! The connection is checked every few seconds (a ping to the bus); a
//! lost bus is reconnected with the shared backoff.

mod interface;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::broadcast::error::RecvError;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

use crate::backoff::Reconnect;
use crate::ingress::execute::Ingress;
use crate::store::{ChangeType, Store};

use interface::Controller;

/// The well-known name berth owns.
pub const NAME: &str = "dev.berth.Controller1";

/// The object path of the controller.
pub const PATH: &str = "/dev/berth/Controller1";

/// How often the bus connection is checked.
const PING_EVERY: Duration = Duration::from_secs(5);

/// D-Bus flags of `berth serve`.
#[derive(Debug, Args)]
pub struct DbusArgs {
    /// Serve dev.berth.Controller1 on this bus: system, session, or a
    /// D-Bus address (unix:path=/run/...). Off unless given.
    #[arg(long, value_name = "system|session|ADDRESS")]
    pub dbus: Option<String>,
}

/// Which bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Bus {
    System,
    Session,
    Address(String),
}

impl DbusArgs {
    /// The bus the flag names, or `None` when D-Bus is off.
    pub(crate) fn bus(&self) -> Option<Bus> {
        self.dbus.as_deref().map(|text| match text {
            "system" => Bus::System,
            "session" => Bus::Session,
            address => Bus::Address(address.to_string()),
        })
    }
}

impl std::fmt::Display for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bus::System => f.write_str("the system bus"),
            Bus::Session => f.write_str("the session bus"),
            Bus::Address(address) => write!(f, "the bus at {address}"),
        }
    }
}

/// Connects to `bus`, owns the name and serves the interface.
pub(crate) async fn connect(bus: &Bus, ingress: Arc<Ingress>) -> Result<Connection, String> {
    let builder = match bus {
        Bus::System => zbus::connection::Builder::system(),
        Bus::Session => zbus::connection::Builder::session(),
        Bus::Address(address) => zbus::connection::Builder::address(address.as_str()),
    };
    builder.name(NAME).serve_at(PATH, Controller { ingress }).build().await.map_err(|error| match &error {
        zbus::Error::NameTaken => format!("--dbus: {NAME} is taken on {bus} (another berth?)"),
        zbus::Error::MethodError(name, _, _) if name.as_str().ends_with("AccessDenied") => format!(
            "--dbus: {bus} does not let berth own {NAME}: install dist/dbus/{NAME}.conf in \
             /etc/dbus-1/system.d/ (or run berth as a user the bus policy allows)"
        ),
        _ => format!("--dbus: cannot connect to {bus}: {error}"),
    })
}

/// Serves on `connection` until `stop`: emits `Changed`, and reconnects
/// when the bus goes away.
pub(crate) async fn run(
    bus: Bus,
    mut connection: Connection,
    ingress: Arc<Ingress>,
    store: Store,
    stop: impl Future<Output = ()>,
) {
    tracing::info!("D-Bus {NAME} at {PATH} on {bus}");
    let mut stop = std::pin::pin!(stop);
    let mut changes = store.watch();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut reconnect = Reconnect::new("D-Bus");
    loop {
        tokio::select! {
            () = &mut stop => break,
            change = changes.recv() => match change {
                Ok(change) => {
                    let what = match change.change {
                        ChangeType::Added => "Added",
                        ChangeType::Modified => "Modified",
                        ChangeType::Deleted => "Deleted",
                    };
                    let object = change.object.key().to_string();
                    if let Ok(emitter) = SignalEmitter::new(&connection, PATH) {
                        let _ = Controller::changed(&emitter, &object, what, change.resource_version).await;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = ping.tick() => {
                if alive(&connection).await {
                    continue;
                }
                // The bus went away (or is slow): connect again, with
                // backoff, unless the old connection answers again (a
                // fresh one cannot own the name while the old one does).
                loop {
                    if alive(&connection).await {
                        break;
                    }
                    match connect(&bus, ingress.clone()).await {
                        Ok(fresh) => {
                            reconnect.succeeded();
                            tracing::info!("D-Bus: connected again to {bus}");
                            connection = fresh;
                            break;
                        }
                        Err(error) => {
                            let delay = reconnect.failed(&error);
                            tokio::select! {
                                () = &mut stop => return,
                                () = tokio::time::sleep(delay) => {}
                            }
                        }
                    }
                }
            }
        }
    }
    let _ = connection.release_name(NAME).await;
}

async fn alive(connection: &Connection) -> bool {
    let ping = async { zbus::fdo::DBusProxy::new(connection).await?.get_id().await };
    matches!(tokio::time::timeout(Duration::from_secs(5), ping).await, Ok(Ok(_)))
}
