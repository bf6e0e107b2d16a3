// Threads that run test code at the same moment: a rendezvous, and a helper
// that starts `count` threads together and joins them.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bnb_test {

// Lets threads wait until every one of them has reached the same point.
class Rendezvous {
public:
    explicit Rendezvous(int parties) : waiting_(parties) {}
    void arrive_and_wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        if (--waiting_ == 0) {
            all_arrived_.notify_all();
            return;
        }
        all_arrived_.wait(lock, [this] { return waiting_ == 0; });
    }

private:
    std::mutex mutex_;
    std::condition_variable all_arrived_;
    int waiting_;
};

// Runs body(0) .. body(count - 1) on threads of their own, released together.
inline void run_on_threads(int count, const std::function<void(int)>& body) {
    Rendezvous start(count);
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(count));
    for (int thread = 0; thread < count; ++thread) {
        threads.emplace_back([&, thread] {
            start.arrive_and_wait();
            body(thread);
        });
    }
    for (std::thread& thread : threads) thread.join();
}

}  // namespace bnb_test
