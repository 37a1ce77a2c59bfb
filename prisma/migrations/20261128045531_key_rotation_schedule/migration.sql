-- CreateTable
CREATE TABLE "key_rotation_schedules" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "rotateEverySeconds" INTEGER NOT NULL,
    "retireAfterSeconds" INTEGER,
    "enabled" BOOLEAN NOT NULL,
    "nextDueAt" TIMESTAMPTZ(3) NOT NULL,
    "rotatingFrom" INTEGER,
    "lastRotatedAt" TIMESTAMPTZ(3),
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,
    "updatedBy" TEXT NOT NULL,

    CONSTRAINT "key_rotation_schedules_pkey" PRIMARY KEY ("id")
);
