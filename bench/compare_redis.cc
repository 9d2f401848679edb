// Copyright (c) glint authors.
//
// Redis as a store for glint_compare, through hiredis on a unix socket:
// SET / GET / DEL of the same payloads; for a hand-off, RPUSH and BLPOP
// (Redis's blocking read) so that the waiter sleeps in the server.

#include <hiredis/hiredis.h>

#include "bench/compare_stores.h"

namespace glint::bench {
namespace {

class RedisStoreClient : public StoreClient {
 public:
  explicit RedisStoreClient(redisContext* c) : c_(c) {}
  ~RedisStoreClient() override { redisFree(c_); }

  bool Put(const uint8_t* id, const uint8_t* src, uint64_t size) override {
    return Status(redisCommand(c_, "SET %b %b", id, size_t{16}, src,
                               static_cast<size_t>(size)));
  }
  bool PutForWaiter(const uint8_t* id, const uint8_t* src,
                    uint64_t size) override {
    return Status(redisCommand(c_, "RPUSH %b %b", id, size_t{16}, src,
                               static_cast<size_t>(size)));
  }
  bool Get(const uint8_t* id, bool block, uint64_t* sum,
           uint64_t* first) override {
    auto* r = static_cast<redisReply*>(
        block ? redisCommand(c_, "BLPOP %b 30", id, size_t{16})
              : redisCommand(c_, "GET %b", id, size_t{16}));
    if (r == nullptr) return false;
    const redisReply* v = r;
    if (block) v = (r->type == REDIS_REPLY_ARRAY && r->elements == 2)
                       ? r->element[1] : nullptr;
    const bool ok = v != nullptr && v->type == REDIS_REPLY_STRING;
    if (ok) {
      const auto* p = reinterpret_cast<const uint8_t*>(v->str);
      *sum += Checksum(p, v->len);
      *first = FirstWord(p, v->len);
    }
    freeReplyObject(r);
    return ok;
  }
  bool Delete(const uint8_t* id) override {
    return Status(redisCommand(c_, "DEL %b", id, size_t{16}));
  }

 private:
  static bool Status(void* reply) {
    auto* r = static_cast<redisReply*>(reply);
    if (r == nullptr) return false;
    const bool ok = r->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    return ok;
  }
  redisContext* c_;
};

}  // namespace

std::unique_ptr<StoreClient> ConnectRedis(const std::string& socket_path) {
  redisContext* c = redisConnectUnix(socket_path.c_str());
  if (c == nullptr) return nullptr;
  if (c->err != 0) {
    std::fprintf(stderr, "redis: %s\n", c->errstr);
    redisFree(c);
    return nullptr;
  }
  return std::make_unique<RedisStoreClient>(c);
}

}  // namespace glint::bench
