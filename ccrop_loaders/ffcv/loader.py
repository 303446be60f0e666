"""An FFCV ``Loader`` that raises decoding errors in the training loop instead of hanging."""
from __future__ import annotations

from ffcv.loader import Loader as _FFCVLoader
from ffcv.loader.epoch_iterator import IS_CUDA, EpochIterator
from ffcv.pipeline.compiler import Compiler


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class _ForwardingEpochIterator(EpochIterator):
    """FFCV 1.0.2's iterator thread dies silently on an exception and ``next`` then waits forever; this one
    hands the exception to the consumer."""

    def run(self) -> None:
        try:
            super().run()
        except BaseException as error:  # forwarded, re-raised in __next__
            self.output_queue.put(_Failure(error))

    def __next__(self):
        item = self.output_queue.get()
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        if item is None:
            self.close()
            raise StopIteration()
        slot, result = item
        if IS_CUDA:
            self.current_stream.wait_stream(self.cuda_streams[slot])
        return result


class Loader(_FFCVLoader):
    """``ffcv.loader.Loader`` with one change: an error while decoding a batch (e.g. a corrupt JPEG, named
    by its sample index) is raised from ``next(iterator)`` in the training loop."""

    def __iter__(self):
        Compiler.set_num_threads(self.num_workers)
        order = self.next_traversal_order()
        if self.drop_last and 0 < len(order) < self.batch_size:  # FFCV would yield nothing, silently
            raise ValueError(f"batch_size={self.batch_size} is more than the {len(order)} samples this loader reads "
                             "(per rank), and drop_last=True drops them all: every epoch would be empty; use a "
                             "smaller batch_size or drop_last=False")
        selected_order = order[: len(self) * self.batch_size]
        self.next_epoch += 1
        if self.code is None or self.recompile:
            self.generate_code()
        return _ForwardingEpochIterator(self, selected_order)
