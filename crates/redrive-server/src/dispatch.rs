//! One `match` from a typed request to the engine.

use redrive_core::api::{Action, Request, Response};
use std::sync::Arc;

use redrive_core::SqsResult;
use redrive_engine::{Engine, RequestContext};

pub async fn dispatch(
    engine: &Arc<Engine>,
    ctx: &RequestContext,
    request: Request,
) -> SqsResult<Response> {
    if let Some(shared) = engine.shared_backend() {
        return engine.handle_shared(&**shared, ctx, request).await;
    }
    // After a store write failure, memory is rebuilt from the disk before anything is served.
    engine.ensure_synced()?;
    Ok(match request {
        Request::CreateQueue(i) => Response::CreateQueue(engine.create_queue(ctx, i).await?),
        Request::GetQueueUrl(i) => Response::GetQueueUrl(engine.get_queue_url(ctx, i)?),
        Request::ListQueues(i) => Response::ListQueues(engine.list_queues(ctx, i)?),
        Request::DeleteQueue(i) => {
            engine.delete_queue(ctx, i).await?;
            Response::Empty(Action::DeleteQueue)
        }
        Request::GetQueueAttributes(i) => {
            Response::GetQueueAttributes(engine.get_queue_attributes(ctx, i)?)
        }
        Request::SetQueueAttributes(i) => {
            engine.set_queue_attributes(ctx, i).await?;
            Response::Empty(Action::SetQueueAttributes)
        }
        Request::SendMessage(i) => Response::SendMessage(engine.send_message(ctx, i).await?),
        Request::SendMessageBatch(i) => {
            Response::SendMessageBatch(engine.send_message_batch(ctx, i).await?)
        }
        Request::ReceiveMessage(i) => {
            Response::ReceiveMessage(engine.receive_message(ctx, i).await?)
        }
        Request::DeleteMessage(i) => {
            engine.delete_message(ctx, i).await?;
            Response::Empty(Action::DeleteMessage)
        }
        Request::DeleteMessageBatch(i) => {
            Response::DeleteMessageBatch(engine.delete_message_batch(ctx, i).await?)
        }
        Request::ChangeMessageVisibility(i) => {
            engine.change_message_visibility(ctx, i).await?;
            Response::Empty(Action::ChangeMessageVisibility)
        }
        Request::ChangeMessageVisibilityBatch(i) => Response::ChangeMessageVisibilityBatch(
            engine.change_message_visibility_batch(ctx, i).await?,
        ),
        Request::PurgeQueue(i) => {
            engine.purge_queue(ctx, i).await?;
            Response::Empty(Action::PurgeQueue)
        }
        Request::TagQueue(i) => {
            engine.tag_queue(ctx, i).await?;
            Response::Empty(Action::TagQueue)
        }
        Request::UntagQueue(i) => {
            engine.untag_queue(ctx, i).await?;
            Response::Empty(Action::UntagQueue)
        }
        Request::ListQueueTags(i) => Response::ListQueueTags(engine.list_queue_tags(ctx, i)?),
        Request::AddPermission(i) => {
            engine.add_permission(ctx, i).await?;
            Response::Empty(Action::AddPermission)
        }
        Request::RemovePermission(i) => {
            engine.remove_permission(ctx, i).await?;
            Response::Empty(Action::RemovePermission)
        }
        Request::ListDeadLetterSourceQueues(i) => {
            Response::ListDeadLetterSourceQueues(engine.list_dead_letter_source_queues(ctx, i)?)
        }
        Request::StartMessageMoveTask(i) => {
            Response::StartMessageMoveTask(engine.start_message_move_task(i).await?)
        }
        Request::CancelMessageMoveTask(i) => {
            Response::CancelMessageMoveTask(engine.cancel_message_move_task(i).await?)
        }
        Request::ListMessageMoveTasks(i) => {
            Response::ListMessageMoveTasks(engine.list_message_move_tasks(i)?)
        }
    })
}
