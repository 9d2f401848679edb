// Builds, seals and reads back one object through a running glintd.
#include <glint/glint.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::unique_ptr<glint::Client> c;
  glint::Status s = glint::Client::Connect(argv[1], &c);
  if (!s.ok()) {
    fprintf(stderr, "connect: %s\n", s.ToString().c_str());
    return 1;
  }
  const glint::ObjectId id = glint::ObjectId::Random();
  glint::MutableBuffer mb;
  s = c->BuildObject(id, 6, &mb, "", {{"from", "consumer"}});
  if (!s.ok()) return 1;
  std::memcpy(mb.mutable_data(), "glint!", 6);
  if (!mb.Seal().ok()) return 1;
  glint::Buffer b;
  if (!c->GetObject(id, &b, 1000).ok() || std::memcmp(b.data(), "glint!", 6) != 0) {
    return 1;
  }
  b.Release();
  if (!c->Delete(id).ok()) return 1;
  printf("consumer ok, glint %s\n", GLINT_VERSION_STRING);
  return 0;
}
