-- AlterTable
ALTER TABLE "master_keys" ADD COLUMN     "keyringMac" TEXT;
