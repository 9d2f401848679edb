// Copyright (c) glint authors.
//
// The whole public API of glint: include this one header.
//
//   glint::StoreOptions opt;  opt.socket_path = "/tmp/my-store";
//   std::unique_ptr<glint::Monitor> monitor;
//   glint::Monitor::Start(opt, &monitor);           // or run glintd
//
//   std::unique_ptr<glint::Client> client;
//   glint::Client::Connect("/tmp/my-store", &client);
//   glint::MutableBuffer mb;
//   client->BuildObject(id, 1024, &mb, "my-name");
//   memcpy(mb.mutable_data(), bytes, 1024);
//   mb.Seal();
//   glint::Buffer b;                                // in any process
//   client->GetObject(id, &b);                      // blocks until sealed

#ifndef GLINT_GLINT_H_
#define GLINT_GLINT_H_

#include "glint/client.h"
#include "glint/monitor.h"
#include "glint/object_id.h"
#include "glint/status.h"
#include "glint/version.h"

#endif  // GLINT_GLINT_H_
