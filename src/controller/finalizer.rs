//! One teardown for every kind, in kube-runtime's `finalizer` shape: a
//! reconciler says what to do while its object lives (apply) and what to
//! do once it is being deleted or is gone (cleanup); [`run`] picks the one
//! that applies and, when the cleanup of a deleted object is done, removes
//! the object from the store (the second phase of the store's two-phase
//! deletion). A cleanup that must wait (a network other containers use, a
//! volume still mounted) returns when to look again, and the object stays
//! in the store, `deletionTimestamp` set, until it is done.

use std::future::Future;

use crate::api::{Object, ObjectKey, Spec};

use super::action::{Action, ReconcileError};
use super::context::Context;

/// How far a cleanup got.
pub(super) enum Cleanup {
    /// Everything the object had in the engine is gone (or is kept on
    /// purpose): the object may leave the store.
    Done,
    /// Not yet: look again as this says.
    Wait(Action),
}

/// Runs `apply` on a live object, or `cleanup` on one being deleted
/// (`Some`) or gone from the store (`None`: its engine objects are
/// orphans), then finishes the deletion once the cleanup is done.
pub(super) async fn run<'a, S, Fa, Fc>(
    ctx: &Context,
    key: &ObjectKey,
    desired: Option<&'a Object<S>>,
    apply: impl FnOnce(&'a Object<S>) -> Fa,
    cleanup: impl FnOnce(Option<&'a Object<S>>) -> Fc,
) -> Result<Action, ReconcileError>
where
    S: Spec,
    Fa: Future<Output = Result<Action, ReconcileError>>,
    Fc: Future<Output = Result<Cleanup, ReconcileError>>,
{
    match desired {
        Some(object) if object.metadata.deletion_timestamp.is_none() => apply(object).await,
        deleting => match cleanup(deleting).await? {
            Cleanup::Wait(action) => Ok(action),
            Cleanup::Done => {
                if let Some(deleted) = deleting {
                    ctx.finish_deletion(&deleted.metadata, key)?;
                }
                Ok(Action::await_change())
            }
        },
    }
}

/// The live object, for kinds with nothing in the engine to clean up (an
/// Image is kept, DNS records and routes leave the servers' next build):
/// a deleted one is removed from the store at once, and `None` returned.
pub(super) fn live<S: Spec>(
    ctx: &Context,
    key: &ObjectKey,
    desired: Option<Object<S>>,
) -> Result<Option<Object<S>>, ReconcileError> {
    match desired {
        Some(object) if object.metadata.deletion_timestamp.is_none() => Ok(Some(object)),
        Some(deleted) => {
            ctx.finish_deletion(&deleted.metadata, key)?;
            Ok(None)
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::api::{AnyObject, IntoAny, Volume, VolumeSpec};
    use crate::engine::fake::FakeEngine;
    use crate::store::{Store, WriteBatch};

    fn context(dir: &tempfile::TempDir) -> Context {
        Context::for_tests(Store::open(dir.path()).expect("store"), Arc::new(FakeEngine::new()))
    }

    fn stored(ctx: &Context, key: &ObjectKey) -> Option<Volume> {
        match ctx.store.get(key).expect("read") {
            Some(AnyObject::Volume(volume)) => Some(volume),
            _ => None,
        }
    }

    async fn apply(_: &Volume) -> Result<Action, ReconcileError> {
        Ok(Action::requeue(Duration::from_secs(1)))
    }

    #[tokio::test]
    async fn the_object_leaves_the_store_only_when_its_cleanup_is_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = context(&dir);
        let volume = Volume::new("data", VolumeSpec::default());
        let key = volume.clone().into_any().key();
        ctx.store.commit(WriteBatch::new().put(volume.into_any())).expect("write");

        // Live: apply runs, cleanup does not.
        let live = stored(&ctx, &key);
        let cleanup = |_| async { panic!("cleanup of a live object") };
        let action = run(&ctx, &key, live.as_ref(), apply, cleanup).await.expect("apply");
        assert_eq!(action, Action::requeue(Duration::from_secs(1)));

        // Deleted, cleanup waiting: the object stays, marked.
        ctx.store.commit(WriteBatch::new().delete(key.clone())).expect("delete");
        let deleting = stored(&ctx, &key);
        let wait = Action::requeue(Duration::from_secs(5));
        let action = run(&ctx, &key, deleting.as_ref(), apply, |_| async move { Ok(Cleanup::Wait(wait)) }).await;
        assert_eq!(action.expect("cleanup"), wait);
        assert!(stored(&ctx, &key).expect("still stored").metadata.deletion_timestamp.is_some());

        // Cleanup done: the object goes.
        let action = run(&ctx, &key, deleting.as_ref(), apply, |_| async { Ok(Cleanup::Done) }).await;
        assert_eq!(action.expect("cleanup"), Action::await_change());
        assert!(stored(&ctx, &key).is_none());

        // Gone: the cleanup of orphans runs with nothing to remove from the store.
        let orphans = run(&ctx, &key, None, apply, |gone: Option<&Volume>| async move {
            assert!(gone.is_none());
            Ok(Cleanup::Done)
        });
        assert_eq!(orphans.await.expect("cleanup"), Action::await_change());
    }
}
